//! `verity provenance verify` against a node that lies: it serves a well-formed chain of its
//! own making (a record in a state root, a block naming that root, a certificate over it).
//! Only signatures of the genesis validators make a block final, and a chain without any
//! certificate cannot keep the check walking.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use axum::extract::{Path as UrlPath, State as UrlState};
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use verity_client::{CertifiedBlock, ProvenanceView};
use verity_consensus::certificate::certify_alone;
use verity_ledger::{Block, BlockHeader, JobState, Provenance, State};
use verity_node::devnet;
use verity_types::merkle::InclusionProof;
use verity_types::{Address, BlockId, Digest, JobId, Keypair, Mode, ProgramHash};

use common::verity;

/// What the lying node serves: one record, and blocks from the one naming its root on.
struct Forged {
    view: ProvenanceView,
    blocks: Vec<CertifiedBlock>,
}

/// A network with one validator (`validator`) on `chain_id`, a job finished in it, and the
/// blocks after, each with a certificate `signer` made for chain `signed_for` if `certified`.
fn forge(
    chain_id: &str,
    signed_for: &str,
    validator: Address,
    signer: &Keypair,
    certified: bool,
) -> Forged {
    let mut genesis = common::with_validator(devnet::genesis(), validator);
    genesis.chain_id = chain_id.into();
    let mut state = State::from_genesis(&genesis).unwrap();
    let job = JobId(Digest([0x42; 32]));
    state.height = 7;
    let record = Provenance {
        job_id: job,
        state: JobState::Finalized,
        mode: Mode::Proof,
        client: Address([1; 32]),
        program_hash: ProgramHash(Digest([2; 32])),
        input_hash: Digest([3; 32]),
        output_hash: Some(Digest([4; 32])),
        proof_hash: Some(Digest([5; 32])),
        prover: Some(Address([6; 32])),
        price: 1_000_000,
        submitted_height: 3,
        fulfilled_height: Some(6),
        finished_height: 6,
    };
    state.provenance.insert(job, record.clone());
    // A real state store holds the forged state: the record's proof checks out against the
    // forged root, so only the certificates can give the lie away.
    let dir = tempfile::tempdir().unwrap();
    let store = verity_store::StateStore::open(dir.path()).unwrap();
    store.write(7, &state.drain_changes()).unwrap();
    let proved = store.prove(&record.store_key()).unwrap().unwrap();
    let (proof, state_root) = (
        InclusionProof {
            proof: proved.proof,
        },
        proved.at.root,
    );
    let mut parent_id = BlockId(Digest([9; 32]));
    let mut blocks = Vec::new();
    for height in 8..8 + 40 {
        let block = Block {
            parent_id,
            header: BlockHeader {
                chain_id: chain_id.into(),
                height,
                timestamp_ms: height * 1000,
                parent: if height == 8 {
                    state_root
                } else {
                    Digest([height as u8; 32])
                },
                proposer: validator,
            },
            txs: vec![],
        };
        let id = block.id();
        let certificate = certified.then(|| {
            let validators = [signer.address()];
            BASE64.encode(certify_alone(signed_for, &validators, signer, height, id).unwrap())
        });
        blocks.push(CertifiedBlock {
            height,
            id,
            block: BASE64.encode(block.to_bytes()),
            certificate,
        });
        parent_id = id;
    }
    Forged {
        view: ProvenanceView {
            record,
            proof,
            state_root,
            height: 7,
        },
        blocks,
    }
}

async fn serve(forged: Forged) -> String {
    let forged = Arc::new(forged);
    let app = Router::new()
        .route(
            "/v1/jobs/{id}/provenance",
            get(|UrlState(f): UrlState<Arc<Forged>>| async move { Json(f.view.clone()) }),
        )
        .route(
            "/v1/blocks/{height}/certified",
            get(
                |UrlState(f): UrlState<Arc<Forged>>, UrlPath(height): UrlPath<u64>| async move {
                    let at = height.checked_sub(8).map(|i| i as usize);
                    match at.and_then(|i| f.blocks.get(i)) {
                        Some(b) => Ok(Json(b.clone())),
                        None => Err(axum::http::StatusCode::NOT_FOUND),
                    }
                },
            ),
        )
        .with_state(forged);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

/// The genesis file a user holds: chain `chain_id`, validated by `validator`.
fn genesis_file(dir: &Path, chain_id: &str, validator: Address) -> String {
    let mut genesis = common::with_validator(devnet::genesis(), validator);
    genesis.chain_id = chain_id.into();
    common::write_genesis(dir, &format!("{chain_id}-{}", validator.short()), &genesis)
}

/// Runs `verity provenance verify` on the forged job; its exit status and stderr.
async fn check(url: &str, genesis: &str) -> (bool, String, String) {
    let job = JobId(Digest([0x42; 32])).to_string();
    let (url, genesis) = (url.to_string(), genesis.to_string());
    let out = tokio::task::spawn_blocking(move || {
        verity(&[
            "provenance",
            "verify",
            &job,
            "--genesis",
            &genesis,
            "--node",
            &url,
        ])
        .output()
        .unwrap()
    })
    .await
    .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lying_node_cannot_make_its_own_chain_final() {
    let dir = tempfile::tempdir().unwrap();
    let real = Keypair::from_seed([11; 32]);
    let impostor = Keypair::from_seed([12; 32]);
    let genesis = genesis_file(dir.path(), "real-net", real.address());

    // The forgery is well formed: whoever holds the signing key's genesis accepts it.
    let url = serve(forge(
        "real-net",
        "real-net",
        impostor.address(),
        &impostor,
        true,
    ))
    .await;
    let impostors = genesis_file(dir.path(), "real-net", impostor.address());
    let (ok, stdout, stderr) = check(&url, &impostors).await;
    assert!(ok, "{stdout}\n{stderr}");
    assert!(stdout.contains("certified by 1 of 1"), "{stdout}");

    // Against the real validator set the same chain is not final.
    let (ok, stdout, stderr) = check(&url, &genesis).await;
    assert!(!ok, "{stdout}");
    assert!(stderr.contains("certificate does not verify"), "{stderr}");

    // Blocks of another chain, even signed by the real key, are not this network's.
    let url = serve(forge("other-net", "other-net", real.address(), &real, true)).await;
    let (ok, _, stderr) = check(&url, &genesis).await;
    assert!(!ok);
    assert!(stderr.contains("is for chain `other-net`"), "{stderr}");
    // Nor is a certificate the real key signed for another chain (its namespace).
    let url = serve(forge("real-net", "other-net", real.address(), &real, true)).await;
    let (ok, _, stderr) = check(&url, &genesis).await;
    assert!(!ok);
    assert!(stderr.contains("certificate does not verify"), "{stderr}");

    // No certificate anywhere: the walk ends after 32 blocks, saying so.
    let url = serve(forge("real-net", "real-net", real.address(), &real, false)).await;
    let (ok, _, stderr) = check(&url, &genesis).await;
    assert!(!ok);
    assert!(
        stderr.contains("no finalization certificate on blocks 8..40"),
        "{stderr}"
    );
}

/// The same check from the SDK (`Client::certified_provenance`), as an application runs it:
/// typed answers, each naming the link that failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sdk_certifies_a_record_only_against_the_validators_it_trusts() {
    use verity_client::{Client, ProvenanceError, TrustedValidators};
    let real = Keypair::from_seed([11; 32]);
    let impostor = Keypair::from_seed([12; 32]);
    let trust = |k: &Keypair| TrustedValidators {
        chain_id: "real-net".into(),
        validators: vec![k.address()],
    };
    let job = JobId(Digest([0x42; 32]));

    let url = serve(forge(
        "real-net",
        "real-net",
        impostor.address(),
        &impostor,
        true,
    ))
    .await;
    let client = Client::new(&url);
    let certified = client
        .certified_provenance(&job, &trust(&impostor))
        .await
        .unwrap();
    assert_eq!(certified.record.job_id, job);
    assert_eq!(certified.record.price, 1_000_000);
    assert_eq!((certified.block_height, certified.certified_height), (8, 8));
    assert_eq!((certified.signers, certified.validators), (1, 1));
    match client.certified_provenance(&job, &trust(&real)).await {
        Err(ProvenanceError::BadCertificate { height: 8, .. }) => {}
        other => panic!("expected a bad certificate, got {other:?}"),
    }
    // The node answers a question about another job with this record.
    let other = JobId(Digest([0x43; 32]));
    match client.certified_provenance(&other, &trust(&impostor)).await {
        Err(ProvenanceError::OtherJob { want, got }) => assert_eq!((want, got), (other, job)),
        other => panic!("expected another job's record refused, got {other:?}"),
    }

    // A record altered after it was proven (a lower price).
    let mut forged = forge("real-net", "real-net", impostor.address(), &impostor, true);
    forged.view.record.price = 1;
    let client = Client::new(&serve(forged).await);
    match client.certified_provenance(&job, &trust(&impostor)).await {
        Err(ProvenanceError::ProofFails) => {}
        other => panic!("expected the proof to fail, got {other:?}"),
    }

    let client =
        Client::new(&serve(forge("other-net", "other-net", real.address(), &real, true)).await);
    match client.certified_provenance(&job, &trust(&real)).await {
        Err(ProvenanceError::OtherChain { height: 8, got, .. }) => assert_eq!(got, "other-net"),
        other => panic!("expected another chain refused, got {other:?}"),
    }
    let client =
        Client::new(&serve(forge("real-net", "real-net", real.address(), &real, false)).await);
    match client.certified_provenance(&job, &trust(&real)).await {
        Err(ProvenanceError::NoCertificate { first: 8, last: 40 }) => {}
        other => panic!("expected no certificate found, got {other:?}"),
    }
}
