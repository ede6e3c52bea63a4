//! A byzantine validator, for tests: instead of an honest engine it runs an equivocator. It
//! follows the chain like a validator (it receives, fetches and commits blocks), and whenever
//! it leads a view it builds two different valid blocks on the certified parent, signs a
//! notarize vote for each, and sends one block and vote to a single victim and the other to
//! everyone else. Honest validators must never finalize both.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use commonware_codec::{Decode, Encode};
use commonware_consensus::simplex::elector::{
    Config as _, Elector as _, RoundRobin, RoundRobinElector,
};
use commonware_consensus::simplex::scheme::ed25519::Scheme;
use commonware_consensus::simplex::types::{
    Activity, Certificate, Context, Notarize, Proposal, Vote,
};
use commonware_consensus::types::{Epoch, Round};
use commonware_consensus::{Reporter, Viewable};
use commonware_cryptography::certificate::{Scheme as _, Verifier as _};
use commonware_cryptography::ed25519::PublicKey;
use commonware_cryptography::sha256::Digest as Sha256Digest;
use commonware_p2p::{Receiver, Recipients, Sender};
use commonware_runtime::{Clock, Handle, Metrics, Spawner, Storage};
use commonware_utils::ordered::Quorum as _;
use tracing::warn;

use crate::app::App;
use crate::chain::Chain;
use crate::status::StatusHandle;
use crate::validator::{Channels, ValidatorConfig, scheme};

/// Starts an equivocating validator in place of an honest one. The counter says how many
/// views it equivocated in.
pub fn start_equivocator<E, C, S, R>(
    context: E,
    config: ValidatorConfig,
    chain: Arc<C>,
    channels: Channels<S, R>,
) -> Result<(Handle<()>, Arc<AtomicU64>), crate::ConsensusError>
where
    E: Clock + rand_core::CryptoRng + Spawner + Storage + Metrics + Send + Sync + 'static,
    C: Chain,
    S: Sender<PublicKey = PublicKey>,
    R: Receiver<PublicKey = PublicKey>,
{
    let (scheme, me) = scheme(&config)?;
    let count = Arc::new(AtomicU64::new(0));
    let equivocations = count.clone();
    let handle = context.child("equivocator").spawn(move |ctx| async move {
        let mut app = App::new(
            ctx.child("app"),
            chain,
            config.app.clone(),
            StatusHandle::default(),
            channels.blocks.0.clone(),
            channels.sync.0.clone(),
        );
        app.spawn_followers(&ctx, channels.blocks.1, channels.sync.1);

        let participants = scheme.participants().clone();
        let elector: RoundRobinElector<Scheme> =
            RoundRobin::<commonware_cryptography::Sha256>::default().build(&participants);
        let (mut votes_out, _) = channels.votes;
        let (_, mut certificates_in) = channels.certificates;
        let mut blocks_out = channels.blocks.0;
        let codec = scheme.certificate_codec_config();
        let mut led = BTreeSet::new();
        while let Ok((_, msg)) = certificates_in.recv().await {
            let Some((view, parent)) = certified(msg, &codec, &mut app) else {
                continue;
            };
            let round = Round::new(Epoch::zero(), view.next());
            if participants.key(elector.elect(round, ())) != Some(&me) || !led.insert(view) {
                continue;
            }
            let context = Context {
                round,
                leader: me.clone(),
                parent: (view, parent),
            };
            let Some((a, parent_state)) = app.propose_for_test(context).await else {
                continue;
            };
            // A second, different block on the same parent: same transactions, one
            // millisecond later.
            let mut b = a.clone();
            b.header.timestamp_ms += 1;
            if !app.remember(b.clone(), &parent_state) {
                continue;
            }
            let (victim, others) = victim_and_others(participants.iter(), &me);
            warn!(
                view = round.view().get(),
                "equivocating: two blocks for one view"
            );
            equivocations.fetch_add(1, Ordering::Relaxed);
            let shown = [
                (&a, Recipients::One(victim)),
                (&b, Recipients::Some(others)),
            ];
            send_with_votes(
                &mut blocks_out,
                &mut votes_out,
                &scheme,
                (round, view),
                shown,
            );
        }
    });
    Ok((handle, count))
}

/// Whom the equivocator shows which block: one peer (the victim) sees the first, every other
/// peer the second.
fn victim_and_others<'a>(
    participants: impl Iterator<Item = &'a PublicKey> + Clone,
    me: &PublicKey,
) -> (PublicKey, Vec<PublicKey>) {
    let mut peers = participants.filter(|k| *k != me).cloned();
    let victim = peers.next().expect("more than one validator");
    (victim, peers.collect())
}

/// Sends each block, with a notarize vote for it, to the peers it is shown to.
fn send_with_votes<S: Sender<PublicKey = PublicKey>>(
    blocks_out: &mut S,
    votes_out: &mut S,
    scheme: &Scheme,
    (round, parent_view): (Round, commonware_consensus::types::View),
    shown: [(&verity_ledger::Block, Recipients<PublicKey>); 2],
) {
    for (block, to) in shown {
        let _ = blocks_out.send(to.clone(), block.to_bytes(), true);
        let proposal = Proposal::new(round, parent_view, Sha256Digest(block.id().0.0));
        let vote = Notarize::<Scheme, _>::sign(scheme, proposal).expect("we sign");
        let _ = votes_out.send(to, Vote::Notarize(vote).encode(), true);
    }
}

/// The view and block a certificate from the network certifies (a finalization is also
/// followed, like everyone else does); `None` for anything else.
fn certified<A: Reporter<Activity = Activity<Scheme, Sha256Digest>>>(
    msg: impl commonware_codec::Input,
    codec: &<Certificate<Scheme, Sha256Digest> as commonware_codec::Read>::Cfg,
    app: &mut A,
) -> Option<(commonware_consensus::types::View, Sha256Digest)> {
    match Certificate::<Scheme, Sha256Digest>::decode_cfg(msg, codec).ok()? {
        Certificate::Notarization(n) => Some((n.view(), n.proposal.payload)),
        Certificate::Finalization(f) => {
            let out = (f.view(), f.proposal.payload);
            app.report(Activity::Finalization(f));
            Some(out)
        }
        _ => None,
    }
}
