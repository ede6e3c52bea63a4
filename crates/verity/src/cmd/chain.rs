//! Chain and account commands: `verity status`, `account`, `stake`, `unstake`, `transfer`.

use std::time::Duration;

use anyhow::Result;
use clap::{Args, ValueEnum};
use verity_client::Client;
use verity_types::{Role, TxBody};

use super::{KeyArgs, NodeArgs, ReadArgs};
use crate::keystore::{resolve_address, resolve_key};

/// How long ago a block time (ms since the Unix epoch) was, as people read it.
fn age(unix_ms: u64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    if unix_ms == 0 {
        return "never".into();
    }
    match now.checked_sub(unix_ms) {
        Some(ms) => format!(
            "{} ago",
            crate::render::fmt_duration(std::time::Duration::from_millis(ms))
        ),
        None => format!("{} ms ahead of this clock", unix_ms - now),
    }
}

pub async fn status(args: ReadArgs) -> Result<()> {
    let client = Client::new(&args.node.node);
    let head = client.head().await?;
    if args.json {
        return crate::render::print_json(&head);
    }
    println!("node      {} (reachable)", client.url());
    println!("chain     {}", head.chain_id);
    println!("height    {}", head.height);
    println!(
        "last block {} (target: one every {} ms)",
        age(head.timestamp_ms),
        head.block_interval_ms
    );
    println!("state root {}", head.state_root);
    println!("mempool   {}", head.mempool);
    println!("providers online {}", head.providers_online);
    match head.consensus {
        Some(c) => {
            println!(
                "consensus BFT (simplex): finalized height {}, view {} (current {}), last finalized {}",
                c.finalized_height,
                c.finalized_view,
                c.current_view,
                age(c.last_finalized_ms)
            );
            println!(
                "validators {} in the set, {} voted in the last {} views",
                c.validators,
                c.validators_seen,
                verity_consensus::RECENT_VIEWS
            );
            for v in &c.voters {
                let said = match v.last_view {
                    Some(view) if v.voting => format!("voting (view {view})"),
                    Some(view) => format!("silent since view {view}"),
                    None => "never seen voting".to_string(),
                };
                println!("          {} {said}", v.validator);
            }
            println!(
                "blocks    {} proposed here, {} rejected, {} views skipped, {} faults seen",
                c.blocks_proposed, c.blocks_rejected, c.nullified_views, c.faults_seen
            );
        }
        None => println!("consensus single block producer"),
    }
    if let Some(a) = head.auditor {
        println!(
            "auditor   re-executes {}/10,000 optimistic results: {} sampled, {} correct, {} challenged, {} not checkable here",
            a.sample_per_10k, a.sampled, a.matched, a.challenged, a.unverifiable
        );
        println!(
            "liveness  {} probes, {} answered, {} audits filed",
            a.probes, a.probes_answered, a.audits_filed
        );
        println!(
            "canaries  {} commitments, {} sent, {} answered wrong and challenged, {} reveals",
            a.canary_commits, a.canaries_sent, a.canaries_challenged, a.canary_reveals
        );
    }
    Ok(())
}

pub async fn account(who: String, args: ReadArgs) -> Result<()> {
    let client = Client::new(&args.node.node);
    let a = client
        .account(&super::address(&client, &who).await?)
        .await?;
    if args.json {
        return crate::render::print_json(&a);
    }
    println!("address  {}", a.address);
    println!("balance  {}", a.balance);
    println!("nonce    {} (next {})", a.nonce, a.next_nonce);
    println!(
        "stake    provider {} ({} locked), validator {}, unbonding {}",
        a.stake.provider,
        a.stake.provider_locked,
        a.stake.validator,
        a.stake.unbonding.iter().map(|u| u.amount).sum::<u64>()
    );
    Ok(())
}

#[derive(Clone, Copy, ValueEnum)]
pub enum RoleArg {
    Provider,
    Validator,
}

#[derive(Args)]
pub struct StakeArgs {
    #[arg(long, value_enum)]
    role: RoleArg,
    #[arg(long)]
    amount: u64,
    #[command(flatten)]
    key: KeyArgs,
    #[command(flatten)]
    node: NodeArgs,
}

pub async fn stake(args: StakeArgs, unstake: bool) -> Result<()> {
    let role = match args.role {
        RoleArg::Provider => Role::Provider,
        RoleArg::Validator => Role::Validator,
    };
    let body = if unstake {
        TxBody::Unstake {
            role,
            amount: args.amount,
        }
    } else {
        TxBody::Stake {
            role,
            amount: args.amount,
        }
    };
    send_and_wait(&args.node, &args.key, body).await
}

#[derive(Args)]
pub struct TransferArgs {
    /// Recipient address or key name.
    #[arg(long)]
    to: String,
    #[arg(long)]
    amount: u64,
    #[command(flatten)]
    key: KeyArgs,
    #[command(flatten)]
    node: NodeArgs,
}

pub async fn transfer(args: TransferArgs) -> Result<()> {
    // The whole address or a key name, never a prefix: a prefix resolves among accounts the
    // chain knows, and money meant for a new account would go to a known one.
    let to = resolve_address(&args.to)?;
    send_and_wait(
        &args.node,
        &args.key,
        TxBody::Transfer {
            to,
            amount: args.amount,
        },
    )
    .await
}

async fn send_and_wait(node: &NodeArgs, key: &KeyArgs, body: TxBody) -> Result<()> {
    let client = Client::new(&node.node);
    let key = resolve_key(&key.key)?;
    let tx = client.send(&key, body).await?;
    let h = client.wait_tx(&tx, Duration::from_secs(30)).await?;
    println!("transaction {} included at height {h}", tx.short());
    Ok(())
}
