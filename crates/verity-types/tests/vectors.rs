//! The transaction encoding test vectors in `docs/API.md` ("Transactions: encoding and
//! signing"), recomputed: a client in another language is written against those numbers, so
//! they must be what the node computes. The doc's `vectors` blocks are read and every value in
//! them checked.

use verity_types::{Keypair, Tx, TxBody};

/// The `name = value` lines of the doc's fenced blocks tagged `vectors`, in order.
fn documented() -> Vec<Vec<(String, String)>> {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/API.md"))
        .expect("docs/API.md");
    let mut blocks = Vec::new();
    let mut current: Option<Vec<(String, String)>> = None;
    for line in doc.lines() {
        match (&mut current, line.trim()) {
            (None, "```vectors") => current = Some(Vec::new()),
            (Some(_), "```") => blocks.push(current.take().unwrap()),
            (Some(block), l) => {
                let (k, v) = l.split_once(" = ").expect("name = value");
                block.push((k.trim().to_string(), v.trim().to_string()));
            }
            (None, _) => {}
        }
    }
    blocks
}

/// What the node computes for a transaction: every value a vector lists.
fn computed(key: &Keypair, tx: Tx) -> Vec<(String, String)> {
    let signing = tx.signing_bytes();
    let tx_bytes = borsh::to_vec(&tx).unwrap();
    let signed = tx.sign(key);
    assert!(signed.signature_is_valid());
    let bytes = signed.to_bytes();
    use base64::Engine;
    vec![
        ("seed".into(), hex::encode(key.seed())),
        ("signer".into(), key.address().to_string()),
        ("tx_borsh".into(), hex::encode(&tx_bytes)),
        ("signing_bytes".into(), hex::encode(&signing)),
        ("signature".into(), hex::encode(signed.signature.0)),
        ("signed_tx_borsh".into(), hex::encode(&bytes)),
        ("tx_id".into(), signed.id().to_string()),
        (
            "post_body".into(),
            format!(
                r#"{{"tx": "{}"}}"#,
                base64::engine::general_purpose::STANDARD.encode(&bytes)
            ),
        ),
    ]
}

#[test]
fn the_documented_transaction_vectors_are_what_the_node_computes() {
    let key = Keypair::from_seed([7; 32]);
    let to = Keypair::from_seed([8; 32]).address();
    let transfer = Tx {
        chain_id: "verity-devnet".into(),
        signer: key.address(),
        nonce: 3,
        body: TxBody::Transfer { to, amount: 1_000 },
    };
    let stake = Tx {
        chain_id: "verity-devnet".into(),
        signer: key.address(),
        nonce: 4,
        body: TxBody::Stake {
            role: verity_types::Role::Provider,
            amount: 500_000,
        },
    };
    let expected = [computed(&key, transfer), computed(&key, stake)];
    let doc = documented();
    assert_eq!(doc.len(), expected.len(), "vectors blocks in docs/API.md");
    for (i, (doc, want)) in doc.iter().zip(&expected).enumerate() {
        for (name, value) in want {
            let documented = doc
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
                .unwrap_or_else(|| panic!("vector {} has no `{name}`", i + 1));
            assert_eq!(documented, value, "vector {} `{name}`", i + 1);
        }
    }
}
