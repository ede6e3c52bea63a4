//! Wiring one validator: the simplex engine, the [`App`], and the six p2p channels they use.

use std::sync::Arc;
use std::time::Duration;

use commonware_codec::DecodeExt;
use commonware_consensus::simplex::Engine;
use commonware_consensus::simplex::config::{Config, Floor, ForwardPolicy, SkipPolicy};
use commonware_consensus::simplex::elector::RoundRobin;
use commonware_consensus::simplex::scheme::ed25519::Scheme;
use commonware_consensus::types::{Epoch, ViewDelta};
use commonware_cryptography::certificate::Scheme as _;
use commonware_cryptography::ed25519::{PrivateKey, PublicKey};
use commonware_cryptography::sha256::Digest as Sha256Digest;
use commonware_p2p::{Blocker, Receiver, Recipients, Sender};
use commonware_parallel::Sequential;
use commonware_runtime::buffer::paged::CacheRef;
use commonware_runtime::{Clock, Handle, IoBuf, Metrics, Spawner, Storage};
use commonware_utils::ordered::Set;
use commonware_utils::{NZDuration, NZU16, NZUsize};
use tracing::{debug, info, warn};
use verity_types::{Address, SignedTx};

use crate::app::{App, AppConfig};
use crate::chain::Chain;
use crate::error::ConsensusError;
use crate::status::{StatusHandle, Voter};

/// p2p channel numbers. Every validator must use the same ones.
pub mod channel {
    pub const VOTES: u64 = 0;
    pub const CERTIFICATES: u64 = 1;
    pub const RESOLVER: u64 = 2;
    pub const BLOCKS: u64 = 3;
    pub const SYNC: u64 = 4;
    pub const TXS: u64 = 5;
    /// Small signed notes nodes share outside blocks (provider heartbeats), opaque here.
    pub const NOTES: u64 = 6;
    pub const ALL: [u64; 7] = [VOTES, CERTIFICATES, RESOLVER, BLOCKS, SYNC, TXS, NOTES];
}

/// Largest note a peer may share; a bigger one is dropped unread.
pub const MAX_NOTE_BYTES: usize = 4096;

/// Largest p2p message: a full block plus framing.
pub const MAX_MESSAGE_BYTES: u32 = (crate::app::MAX_BLOCK_BYTES + 256 * 1024) as u32;

#[derive(Debug, Clone)]
pub struct ValidatorConfig {
    pub app: AppConfig,
    /// The validator set (ledger addresses, which are their consensus keys), from genesis.
    pub validators: Vec<Address>,
    /// Domain separation for votes: the chain id, so votes never replay across chains.
    pub namespace: Vec<u8>,
    /// Storage partition for the consensus journal.
    pub partition: String,
    /// How long to wait for a leader's proposal before voting to skip its view.
    pub leader_timeout: Duration,
    /// How long to wait for a proposal to be notarized before voting to skip.
    pub certification_timeout: Duration,
}

impl ValidatorConfig {
    /// Defaults suited to a LAN or loopback network.
    pub fn new(app: AppConfig, validators: Vec<Address>, namespace: &str) -> ValidatorConfig {
        ValidatorConfig {
            app,
            validators,
            namespace: namespace.as_bytes().to_vec(),
            partition: "verity-simplex".into(),
            leader_timeout: Duration::from_secs(1),
            certification_timeout: Duration::from_secs(2),
        }
    }
}

/// The channels a validator talks on, as (sender, receiver) pairs.
pub struct Channels<S, R> {
    pub votes: (S, R),
    pub certificates: (S, R),
    pub resolver: (S, R),
    pub blocks: (S, R),
    pub sync: (S, R),
    pub txs: (S, R),
    pub notes: (S, R),
}

/// A started validator: its status, and a way to gossip transactions to the others.
pub struct Validator<S> {
    pub status: StatusHandle,
    txs_out: S,
    notes_out: S,
}

impl<S: Sender<PublicKey = PublicKey>> Validator<S> {
    /// Sends a transaction this node admitted to every other validator, so whoever proposes
    /// next can include it.
    pub fn gossip(&self, tx: &SignedTx) {
        let _ = self
            .txs_out
            .clone()
            .send(Recipients::All, tx.to_bytes(), false);
    }

    /// Sends a note (a provider's heartbeat this node accepted) to every other validator:
    /// each checks it as its own API would, so what one node knows of providers all do.
    pub fn share(&self, note: Vec<u8>) {
        let _ = self.notes_out.clone().send(Recipients::All, note, false);
    }
}

/// The consensus key of a ledger address.
pub fn public_key(address: &Address) -> Result<PublicKey, ConsensusError> {
    PublicKey::decode(IoBuf::copy_from_slice(&address.0)).map_err(|e| ConsensusError::BadKey {
        address: *address,
        reason: e.to_string(),
    })
}

/// A ledger key as consensus signs with it (the same ed25519 key).
pub(crate) fn private_key(key: &verity_types::Keypair) -> Result<PrivateKey, ConsensusError> {
    PrivateKey::decode(IoBuf::copy_from_slice(&key.seed()))
        .map_err(|e| ConsensusError::BadSigner(e.to_string()))
}

/// The validator set as consensus orders it: a signer's index in votes and certificates is
/// its key's place here, so everything that reads those indexes builds the set this way.
pub(crate) fn participant_set(validators: &[Address]) -> Result<Set<PublicKey>, ConsensusError> {
    let keys = validators
        .iter()
        .map(public_key)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Set::from_iter_dedup(keys))
}

/// This validator's signing scheme over the validator set, and its key.
pub(crate) fn scheme(config: &ValidatorConfig) -> Result<(Scheme, PublicKey), ConsensusError> {
    let private = private_key(&config.app.key)?;
    let participants = participant_set(&config.validators)?;
    let me = public_key(&config.app.key.address())?;
    let scheme = Scheme::signer(&config.namespace, participants, private)
        .ok_or(ConsensusError::NotAValidator(config.app.key.address()))?;
    Ok((scheme, me))
}

/// How often a validator checks whether blocks are still being finalized.
const STALL_CHECK: Duration = Duration::from_secs(10);

/// Logs a warning while no block is finalized (who is silent, how many votes are needed),
/// and when finalization resumes: during a stall a validator's log says why.
async fn watch_for_stalls<E: Clock>(context: E, status: StatusHandle) {
    let started = crate::app::now_ms(&context);
    let mut stalled = false;
    loop {
        context.sleep(STALL_CHECK).await;
        let s = status.get();
        match s.stall(crate::app::now_ms(&context), started) {
            Some(report) => {
                warn!("{report}");
                stalled = true;
            }
            None if stalled => {
                info!(
                    height = s.finalized_height,
                    "blocks are being finalized again"
                );
                stalled = false;
            }
            None => {}
        }
    }
}

/// Hands what peers gossip to the chain: transactions to its pool, notes to `Chain::heard`.
fn hear_peers<E, C, R>(ctx: &E, chain: &Arc<C>, mut txs: R, mut notes: R)
where
    E: Spawner + Metrics,
    C: Chain,
    R: Receiver<PublicKey = PublicKey>,
{
    let pool = chain.clone();
    ctx.child("txs").spawn(move |_| async move {
        while let Ok((peer, msg)) = txs.recv().await {
            match borsh::from_slice::<SignedTx>(msg.as_ref()) {
                Ok(tx) => pool.admit(tx),
                Err(e) => debug!(?peer, "ignoring malformed transaction: {e}"),
            }
        }
    });
    let chain = chain.clone();
    ctx.child("notes").spawn(move |_| async move {
        while let Ok((peer, msg)) = notes.recv().await {
            if msg.len() <= MAX_NOTE_BYTES {
                chain.heard(msg.as_ref());
            } else {
                debug!(?peer, "ignoring a note of {} bytes", msg.len());
            }
        }
    });
}

/// A fresh status over the validator set, every validator not yet seen voting.
fn status_of(participants: &Set<PublicKey>) -> StatusHandle {
    let status = StatusHandle::default();
    status.update(|s| {
        s.validators = participants.len();
        // In the set's order: a vote's signer number indexes this list.
        s.voters = participants
            .iter()
            .map(|key| Voter {
                validator: crate::app::address_of(key),
                last_view: None,
            })
            .collect();
    });
    status
}

/// Starts a validator under `context`. Aborting the returned handle stops everything it
/// started (as a crash would; the [`Chain`] and the consensus journal are what survive).
pub fn start<E, C, S, R, B>(
    context: E,
    config: ValidatorConfig,
    chain: Arc<C>,
    channels: Channels<S, R>,
    blocker: B,
) -> Result<(Validator<S>, Handle<()>), ConsensusError>
where
    E: Clock + rand_core::CryptoRng + Spawner + Storage + Metrics + Send + Sync + 'static,
    C: Chain,
    S: Sender<PublicKey = PublicKey>,
    R: Receiver<PublicKey = PublicKey>,
    B: Blocker<PublicKey = PublicKey>,
{
    let (scheme, _) = scheme(&config)?;
    let participants = scheme.participants().clone();
    let genesis = chain.genesis_id();
    let status = status_of(&participants);
    let watched = status.clone();
    let validator = Validator {
        status: status.clone(),
        txs_out: channels.txs.0.clone(),
        notes_out: channels.notes.0.clone(),
    };

    let handle = context.child("validator").spawn(move |ctx| async move {
        let app = App::new(
            ctx.child("app"),
            chain.clone(),
            config.app.clone(),
            status,
            channels.blocks.0.clone(),
            channels.sync.0.clone(),
        );
        app.spawn_followers(&ctx, channels.blocks.1, channels.sync.1);
        ctx.child("stalls")
            .spawn(move |ctx| async move { watch_for_stalls(ctx, watched).await });
        hear_peers(&ctx, &chain, channels.txs.1, channels.notes.1);

        let engine_config = Config {
            scheme,
            elector: RoundRobin::<commonware_cryptography::Sha256>::default(),
            blocker,
            automaton: app.clone(),
            relay: app.clone(),
            reporter: app,
            track_historical_votes: false,
            strategy: Sequential,
            partition: config.partition.clone(),
            mailbox_size: NZUsize!(1024),
            epoch: Epoch::zero(),
            floor: Floor::Genesis(Sha256Digest(genesis.0.0)),
            replay_buffer: NZUsize!(1024 * 1024),
            write_buffer: NZUsize!(1024 * 1024),
            page_cache: CacheRef::new(NZU16!(4096), NZUsize!(256)),
            leader_timeout: config.leader_timeout,
            certification_timeout: config.certification_timeout,
            timeout_retry: config.certification_timeout * 2,
            view_retention: ViewDelta::new(64),
            skip: SkipPolicy::Disabled,
            fetch_timeout: NZDuration!(Duration::from_secs(1)),
            fetch_retry_delay: Duration::from_millis(100),
            forward: ForwardPolicy::SilentVoters,
        };
        let engine = Engine::new(ctx.child("engine"), engine_config);
        let _ = engine
            .start(channels.votes, channels.certificates, channels.resolver)
            .await;
    });
    Ok((validator, handle))
}
