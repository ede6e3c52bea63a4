//! `verity genesis new`: a valid genesis file from the validators' `node init` lines, funded
//! accounts, provider stakes and parameters, checked the way a node will check it, so nobody
//! writes one by hand.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Subcommand};
use verity_ledger::{Genesis, GenesisAccount, GenesisStake, Params, State};
use verity_types::{Address, Role};

use verity_node::devnet;

use crate::keystore::resolve_address;

#[derive(Subcommand)]
pub enum GenesisCmd {
    /// Write a genesis file: validators (from a peers file or --validator), funded accounts,
    /// provider stakes, the chain id and ledger parameters. Checked before it is written.
    New(NewArgs),
}

#[derive(Args)]
pub struct NewArgs {
    /// The network's name: a transaction signed for another chain is refused.
    #[arg(long)]
    chain_id: String,
    /// The validators' peers file (the `[[validator]]` lines `verity node init` prints): each
    /// address becomes a staked, funded validator.
    #[arg(long)]
    peers: Option<PathBuf>,
    /// A validator address (or key name), instead of or besides --peers. Repeatable.
    #[arg(long = "validator", value_name = "ADDRESS")]
    validators: Vec<String>,
    /// Each validator's stake.
    #[arg(long, default_value_t = 1_000_000)]
    validator_stake: u64,
    /// Each validator's balance: audits and canaries are transactions, and every transaction
    /// pays a fee.
    #[arg(long, default_value_t = 1_000_000_000)]
    validator_balance: u64,
    /// A funded account, `ADDRESS=BALANCE` (the address whole, or a key name). Repeatable.
    #[arg(long = "account", value_name = "ADDRESS=BALANCE")]
    accounts: Vec<String>,
    /// A provider staked at genesis, `ADDRESS=STAKE` (fund it with --account too: its locks
    /// and fulfilments pay fees). Repeatable.
    #[arg(long = "provider", value_name = "ADDRESS=STAKE")]
    providers: Vec<String>,
    /// A ledger parameter, `NAME=VALUE` (e.g. `challenge_window=20`; the names are the
    /// `params` keys in docs/API.md's genesis example). Repeatable.
    #[arg(long = "param", value_name = "NAME=VALUE")]
    params: Vec<String>,
    /// Genesis time, milliseconds since the Unix epoch (the first block must come after it).
    #[arg(long, default_value_t = 0)]
    genesis_time_ms: u64,
    /// Where to write the file.
    #[arg(short, long)]
    output: PathBuf,
    /// Replace an existing file.
    #[arg(long)]
    force: bool,
    /// Allow the public devnet keys (`client`, `provider`, `validator`, …), whose private keys
    /// anyone can derive: for test networks only.
    #[arg(long)]
    dev_keys: bool,
}

pub fn run(cmd: GenesisCmd) -> Result<()> {
    match cmd {
        GenesisCmd::New(args) => new(args),
    }
}

/// `ADDRESS=AMOUNT`, for `flag`.
fn address_amount(flag: &str, s: &str) -> Result<(Address, u64)> {
    let (who, amount) = s
        .split_once('=')
        .ok_or_else(|| anyhow!("--{flag} `{s}`: expected ADDRESS=AMOUNT"))?;
    let address = resolve_address(who.trim()).with_context(|| format!("--{flag} `{s}`"))?;
    let amount = amount
        .trim()
        .parse()
        .map_err(|_| anyhow!("--{flag} `{s}`: `{amount}` is not a whole number"))?;
    Ok((address, amount))
}

/// The default parameters with each `NAME=VALUE` set; an unknown name is an error listing
/// the known ones.
pub fn params_with(settings: &[String]) -> Result<Params> {
    let mut json = serde_json::to_value(Params::default())?;
    let known: Vec<String> = json
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    for s in settings {
        let (name, value) = s
            .split_once('=')
            .ok_or_else(|| anyhow!("--param `{s}`: expected NAME=VALUE"))?;
        let slot = json.get_mut(name.trim()).ok_or_else(|| {
            anyhow!(
                "--param: there is no parameter `{name}` (parameters: {})",
                known.join(", ")
            )
        })?;
        *slot = serde_json::from_str(value.trim())
            .map_err(|e| anyhow!("--param `{s}`: `{value}` is not a value: {e}"))?;
    }
    serde_json::from_value(json).map_err(|e| anyhow!("--param: {e}"))
}

fn validators(args: &NewArgs) -> Result<Vec<Address>> {
    let listed: Vec<Address> = match &args.peers {
        Some(peers) => super::node::read_peers(peers)?
            .into_iter()
            .map(|(a, _)| a)
            .collect(),
        None => Vec::new(),
    };
    let mut all = listed.clone();
    for v in &args.validators {
        all.push(resolve_address(v).with_context(|| format!("--validator `{v}`"))?);
    }
    if all.is_empty() {
        bail!("a network needs a validator: pass --peers FILE or --validator ADDRESS");
    }
    // A BFT validator must be reachable: every validator needs its line in the peers file.
    if let Some(peers) = &args.peers
        && let Some(missing) = all.iter().find(|a| !listed.contains(a))
    {
        bail!(
            "validator {missing} has no line in the peers file {}",
            peers.display()
        );
    }
    let mut seen = std::collections::BTreeSet::new();
    if let Some(twice) = all.iter().find(|a| !seen.insert(**a)) {
        bail!("validator {twice} is listed twice");
    }
    Ok(all)
}

/// The devnet's keys are derived from their names: anyone can sign for them.
pub(crate) fn public_dev_key(address: &Address) -> Option<String> {
    let names = devnet::DEV_ACCOUNTS
        .iter()
        .map(|n| n.to_string())
        .chain((0..16).map(devnet::validator_name));
    names
        .into_iter()
        .find(|n| devnet::dev_key(n).address() == *address)
}

/// Refuses what a node would take but a network should not start with: a validator without
/// stake (it would not be one), an address listed twice (the node would add the amounts up),
/// and the public devnet keys unless `--dev-keys`.
fn check(genesis: &Genesis, dev_keys: bool) -> Result<()> {
    if genesis
        .stakes
        .iter()
        .any(|s| s.role == Role::Validator && s.amount == 0)
    {
        bail!("--validator-stake must be above 0 (a validator without stake is not one)");
    }
    let mut seen = std::collections::BTreeSet::new();
    if let Some(twice) = genesis.accounts.iter().find(|a| !seen.insert(a.address)) {
        bail!(
            "account {} is funded twice (give it one --account, or do not also list a validator there)",
            twice.address
        );
    }
    let mut staked = std::collections::BTreeSet::new();
    if let Some(twice) = genesis
        .stakes
        .iter()
        .find(|s| !staked.insert((s.address, s.role)))
    {
        bail!("{} is staked twice", twice.address);
    }
    if !dev_keys {
        let everyone = genesis
            .accounts
            .iter()
            .map(|a| a.address)
            .chain(genesis.stakes.iter().map(|s| s.address));
        for address in everyone {
            if let Some(name) = public_dev_key(&address) {
                bail!(
                    "{address} is the public devnet key `{name}`: anyone can sign for it. Use your own keys \
                     (`verity keys new NAME`), or pass --dev-keys for a test network"
                );
            }
        }
    }
    Ok(())
}

/// The genesis the flags describe, checked as a node will check it.
fn genesis(args: &NewArgs) -> Result<Genesis> {
    let mut accounts = Vec::new();
    let mut stakes = Vec::new();
    for v in validators(args)? {
        accounts.push(GenesisAccount {
            address: v,
            balance: args.validator_balance,
        });
        stakes.push(GenesisStake {
            address: v,
            role: Role::Validator,
            amount: args.validator_stake,
        });
    }
    for a in &args.accounts {
        let (address, balance) = address_amount("account", a)?;
        accounts.push(GenesisAccount { address, balance });
    }
    for p in &args.providers {
        let (address, amount) = address_amount("provider", p)?;
        stakes.push(GenesisStake {
            address,
            role: Role::Provider,
            amount,
        });
    }
    let genesis = Genesis {
        chain_id: args.chain_id.clone(),
        genesis_time_ms: args.genesis_time_ms,
        params: params_with(&args.params)?,
        accounts,
        stakes,
    };
    check(&genesis, args.dev_keys)?;
    State::from_genesis(&genesis).context("the genesis would not start a chain")?;
    Ok(genesis)
}

pub fn write(path: &Path, genesis: &Genesis, force: bool) -> Result<()> {
    if path.exists() && !force {
        bail!("{} exists (pass --force to replace it)", path.display());
    }
    let text = serde_json::to_string_pretty(genesis)? + "\n";
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

fn count(n: usize, what: &str) -> String {
    format!("{n} {what}{}", if n == 1 { "" } else { "s" })
}

fn new(args: NewArgs) -> Result<()> {
    let genesis = genesis(&args)?;
    write(&args.output, &genesis, args.force)?;
    let supply: u128 = genesis
        .accounts
        .iter()
        .map(|a| u128::from(a.balance))
        .chain(genesis.stakes.iter().map(|s| u128::from(s.amount)))
        .sum();
    let providers = genesis
        .stakes
        .iter()
        .filter(|s| s.role == Role::Provider)
        .count();
    println!(
        "{}: chain {}, {}, {}, {}, supply {supply}",
        args.output.display(),
        genesis.chain_id,
        count(genesis.validators().len(), "validator"),
        count(genesis.accounts.len(), "account"),
        count(providers, "staked provider"),
    );
    println!(
        "every validator runs: verity node run --dir DIR --peers PEERS --genesis {}",
        args.output.display()
    );
    Ok(())
}
