//! A `.vmodel` and its compiled program: loading, importing from ONNX, the statement one
//! prediction proves, and the registry of models this machine has seen.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use verity_model::{Compiled, QuantModel};
use verity_types::{PrivateCommitment, ProgramHash};
use verity_vm::{Inputs, Program};

use crate::program_file::LoadedProgram;
use crate::render::{commitment_hex, words_hex};

/// What a committed-weights prediction is proven with besides its input: the model
/// commitment (first on the stack) and the advice-map entries the program reads.
pub struct Committed {
    pub commitment: [u64; 4],
    pub entries: Vec<(verity_types::Digest, Vec<u64>)>,
}

/// A model with its compiled program.
pub struct LoadedModel {
    pub model: QuantModel,
    pub compiled: Compiled,
}

impl LoadedModel {
    pub fn load(path: &Path) -> Result<LoadedModel> {
        let model = QuantModel::load(path)
            .with_context(|| format!("cannot load model {}", path.display()))?;
        let compiled = verity_model::compile(&model)?;
        Ok(LoadedModel { model, compiled })
    }

    /// The quantized input, as integers and as what the program is given: field elements on
    /// the stack (a public input) or the private data, which also holds the accumulators of
    /// any convolution the program checks instead of computing.
    pub fn quantized_input(&self, x: &[f32]) -> Result<(Vec<i64>, Vec<u64>)> {
        let q = self.model.quantize_input(x)?;
        let given = if self.model.public_input {
            q.iter().map(|v| verity_model::to_felt(*v)).collect()
        } else {
            self.compiled.private_data(&self.model, &q)?
        };
        Ok((q, given))
    }

    /// A committed-weights model's card: the weights are not in it.
    pub fn is_card(&self) -> bool {
        self.model.weights_commitment.is_some()
    }

    /// The commitment to a committed-weights model's weights (the card's, or computed).
    pub fn weights_commitment(&self) -> Result<Option<PrivateCommitment>> {
        let (true, Some(weights)) = (self.model.private_weights, &self.compiled.weights) else {
            return Ok(None);
        };
        let computed = verity_vm::commit_private(weights)?;
        Ok(Some(match self.model.weights_commitment {
            Some(commitment) => PrivateCommitment {
                commitment,
                words: computed.words,
            },
            None => computed,
        }))
    }

    /// What a committed-weights prediction names first on its stack and the program checks:
    /// `hash(weights commitment, interpretation digest)`. It binds the labels and scales too,
    /// which the architecture's program does not compute with; a card holds both halves, so a
    /// verifier recomputes it without the weights.
    pub fn model_commitment(&self) -> Result<Option<[u64; 4]>> {
        Ok(self.committed()?.map(|c| c.commitment))
    }

    /// A committed-weights prediction's model commitment and the advice-map entries the
    /// program reads: the commitment's two halves under it, and the weights under theirs (a
    /// card has only the first). The weights are hashed once.
    pub fn committed(&self) -> Result<Option<Committed>> {
        let Some(w) = self.weights_commitment()? else {
            return Ok(None);
        };
        let digest = self.model.interpretation_digest();
        let m = verity_vm::merge_words(w.commitment, digest)?;
        let halves = PrivateCommitment {
            commitment: m,
            words: 2,
        };
        let mut both = w.commitment.to_vec();
        both.extend(digest);
        let mut entries = vec![verity_vm::committed_entry(&halves, &both)];
        if let (false, Some(weights)) = (self.is_card(), &self.compiled.weights) {
            entries.push(verity_vm::committed_entry(&w, weights));
        }
        Ok(Some(Committed {
            commitment: m,
            entries,
        }))
    }

    /// What the prover of a committed-weights prediction on the private data `input` supplies
    /// besides the weights, as an advice-map entry: the accumulators of the layers the
    /// program checks instead of computing, under `hash(input commitment, m)` (m the model
    /// commitment, from [`Self::committed`]: a provider computes it once, not per job; see
    /// `verity_model::Compiled::prover_hints`). None for a model that checks no layer (or has
    /// no committed weights); an error for a card, which has no weights.
    pub fn prover_hints(
        &self,
        m: [u64; 4],
        input: &[u64],
    ) -> Result<Option<(verity_types::Digest, Vec<u64>)>> {
        if !self.compiled.hints_from_prover {
            return Ok(None);
        }
        self.runnable()?;
        // The program reads the model's input from the start of the private data and nothing
        // after it, and memory past the data is zero: so does the reference. The key below
        // still commits to the data as given, as the program's does.
        let n_in = self.model.input.len();
        let q: Vec<i64> = input
            .iter()
            .map(|v| verity_model::from_felt(*v))
            .chain(std::iter::repeat(0))
            .take(n_in)
            .collect();
        let Some(hints) = self.compiled.prover_hints(&self.model, &q)? else {
            return Ok(None);
        };
        let input_commitment = verity_vm::commit_private(input)?.commitment;
        let key = PrivateCommitment {
            commitment: verity_vm::merge_words(input_commitment, m)?,
            words: hints.len().div_ceil(4) as u32,
        };
        Ok(Some(verity_vm::committed_entry(&key, &hints)))
    }

    /// Why a receipt or job may not match this file though it was made with the same model:
    /// the file was written when Verity's compiler generated another program for it (a
    /// receipt made then proves that program, and a card's weights commitment follows that
    /// program's layout of the parameters). Empty when nothing says so; to append to the
    /// error that refuses the receipt.
    pub fn compiler_note(&self) -> String {
        match &self.model.written_with {
            Some(d) if *d != self.compiled.digest() => format!(
                " (note: {} was written by a Verity that compiled it to another program: {})",
                self.model.name,
                if self.is_card() {
                    "a receipt made by that version, or made with weights committed in that version's layout, does not match it; ask the model's owner for a card from this version"
                } else {
                    "a receipt made by that version does not match it; re-import the ONNX file"
                }
            ),
            _ => String::new(),
        }
    }

    /// Fails for a model card, which cannot predict.
    pub fn runnable(&self) -> Result<()> {
        if self.is_card() {
            bail!(
                "model {} is a card: its weights are not in it, so only their owner can predict \
                 with it (a card verifies receipts)",
                self.model.name
            );
        }
        Ok(())
    }

    /// The input as given to the program: the model commitment first (committed-weights
    /// models, with its halves and the weights in the advice map), then the input as public
    /// stack values, or as private inputs.
    fn given(&self, input: &[u64]) -> Result<Inputs> {
        let mut given = Inputs::default();
        if let Some(c) = self.committed()? {
            given.stack.extend(c.commitment);
            given.advice.map.extend(c.entries);
            if !self.is_card() {
                given
                    .advice
                    .map
                    .extend(self.prover_hints(c.commitment, input)?);
            }
        }
        if self.model.public_input {
            given.stack.extend_from_slice(input);
        } else {
            given.private = input.to_vec();
        }
        Ok(given)
    }

    /// The program and inputs to run or prove for one quantized input, exactly as a network
    /// job with the same input is proven (a private input loader-wrapped, its commitment on
    /// the stack).
    pub fn statement(&self, input: &[u64]) -> Result<(Program, Inputs)> {
        Ok(verity_vm::prepare(
            &self.compiled.source,
            "model.masm",
            &self.given(input)?,
        )?)
    }

    /// The model id: the hash of the program every prediction of this model proves.
    pub fn id(&self) -> Result<ProgramHash> {
        Ok(self.statement(&vec![0; self.model.input.len()])?.0.hash())
    }

    /// Private input words the program is proven with (the commitment covers exactly these).
    pub fn input_words(&self) -> u32 {
        self.compiled.private_len.div_ceil(4) as u32
    }

    /// How the receipt shows the input: its commitment, or (public) the values; and the
    /// weights' commitment of a committed-weights model.
    pub fn input_line(&self, stack_inputs: &[u64]) -> String {
        let weights = if self.model.private_weights { 4 } else { 0 };
        let input = if self.model.public_input {
            let values: Vec<i64> = stack_inputs
                .iter()
                .skip(weights)
                .map(|v| verity_model::from_felt(*v))
                .collect();
            format!("public input {values:?}")
        } else {
            match verity_vm::commitment_in_stack(stack_inputs) {
                Some(c) => format!("input commitment {}", commitment_hex(&c)),
                None => "no input commitment".into(),
            }
        };
        if self.model.private_weights {
            format!(
                "{input}, model commitment {}",
                words_hex(&self.receipt_model_commitment(stack_inputs))
            )
        } else {
            input
        }
    }

    /// Where a committed-weights model's receipt carries the model commitment: first, or
    /// after a private input's commitment.
    pub fn receipt_model_commitment(&self, stack_inputs: &[u64]) -> Vec<u64> {
        let at = if self.model.public_input {
            0
        } else {
            verity_vm::PRIVATE_INPUT_SLOTS
        };
        stack_inputs.iter().skip(at).take(4).copied().collect()
    }

    /// One prediction as a job: the model's program and the quantized input (from a card
    /// too: the job is then for a provider that holds the weights).
    pub fn job(&self, x: &[f32]) -> Result<LoadedProgram> {
        let (_, input) = self.quantized_input(x)?;
        let (program, inputs) = self.statement(&input)?;
        Ok(LoadedProgram {
            source: self.compiled.source.clone(),
            program,
            inputs,
            given: self.given(&input)?,
        })
    }

    /// A card's prediction of `x` run with the card's neutral parameters (zero weights) under
    /// their own commitment. An architecture program runs the same instructions whatever the
    /// weights (only the argmax's branches differ, by a few cycles), so this measures the trace
    /// that the provider holding the real weights will prove: cycles and chiplet rows alike,
    /// where the compiler's cycle bound says nothing of the chiplets.
    pub fn dry_run(&self, x: &[f32]) -> Result<verity_vm::Execution> {
        let stand_in = LoadedModel {
            model: QuantModel {
                weights_commitment: None,
                ..self.model.clone()
            },
            compiled: self.compiled.clone(),
        };
        let (_, input) = stand_in.quantized_input(x)?;
        let (program, inputs) = stand_in.statement(&input)?;
        let cap = u32::try_from(self.compiled.estimated_cycles)
            .unwrap_or(u32::MAX)
            .clamp(verity_vm::MIN_MAX_CYCLES, verity_vm::MAX_MAX_CYCLES);
        verity_vm::execute(&program, &inputs, cap).context("the model's program fails a dry run")
    }

    /// `class C (label L), logits [...]` from a prediction's output stack; fails unless the
    /// class is the logits' argmax.
    pub fn describe(&self, outputs: &[u64]) -> Result<String> {
        let (class, logits) = self.model.decode_outputs(outputs)?;
        if verity_model::argmax(&logits) != class {
            bail!("the class is not the argmax of the logits");
        }
        Ok(format!(
            "class {class} (label {}), logits {logits:?}",
            self.model.label(class)
        ))
    }
}

/// Where models this machine imported or submitted are kept, by model id, so that `job
/// status` can decode their predictions.
fn registry_path(id: &ProgramHash) -> PathBuf {
    crate::keystore::verity_home()
        .join("models")
        .join(format!("{id}.vmodel"))
}

/// Keeps a copy of `loaded` under its id (a failure only costs the automatic decoding).
pub fn remember(loaded: &LoadedModel, id: &ProgramHash) {
    let path = registry_path(id);
    // Committed-weights models share their architecture's id, and their weights are secret.
    if path.is_file() || loaded.model.private_weights {
        return;
    }
    let saved = path
        .parent()
        .map(std::fs::create_dir_all)
        .transpose()
        .map_err(anyhow::Error::from)
        .and_then(|_| Ok(loaded.model.save(&path)?));
    if let Err(e) = saved {
        eprintln!(
            "note: cannot keep a copy of the model in {}: {e}",
            path.display()
        );
    }
}

/// The model whose id is `id`, if this machine knows it (and it still compiles to that id).
pub fn recall(id: &ProgramHash) -> Option<LoadedModel> {
    let loaded = LoadedModel::load(&registry_path(id)).ok()?;
    (loaded.id().ok()? == *id).then_some(loaded)
}

/// Reads exactly one input sample.
pub fn read_input(path: &Path) -> Result<Vec<f32>> {
    let mut samples =
        verity_model::read_samples(path).with_context(|| format!("in {}", path.display()))?;
    if samples.len() != 1 {
        bail!(
            "{} holds {} inputs; give one",
            path.display(),
            samples.len()
        );
    }
    Ok(samples.remove(0))
}

/// Imports an ONNX model: quantizes it on the calibration samples, compiles it, checks it
/// fits `limit` cycles, and runs the program once against the integer reference (an import
/// never yields a model whose program disagrees with it). Returns the model, its id and one
/// run.
pub fn import_model(
    onnx: &Path,
    calibration: &Path,
    limit: u32,
    public_input: bool,
    private_weights: bool,
) -> Result<(LoadedModel, ProgramHash, verity_vm::Execution)> {
    if limit > verity_vm::MAX_MAX_CYCLES {
        bail!("--max-cycles is at most {}", verity_vm::MAX_MAX_CYCLES);
    }
    let samples = verity_model::read_samples(calibration)
        .with_context(|| format!("in {}", calibration.display()))?;
    let mut model = verity_model::import(onnx, &samples)
        .with_context(|| format!("cannot import {}", onnx.display()))?;
    model.public_input = public_input;
    model.private_weights = private_weights;
    let compiled = verity_model::compile(&model).context("cannot compile the model")?;
    compiled.check_fits(u64::from(limit))?;
    model.written_with = Some(compiled.digest());
    let loaded = LoadedModel { model, compiled };
    let (quantized, input) = loaded.quantized_input(&samples[0])?;
    let (program, inputs) = loaded.statement(&input)?;
    let run =
        verity_vm::execute(&program, &inputs, limit).context("the compiled program failed")?;
    let (class, logits) = loaded.model.decode_outputs(&run.outputs)?;
    let want = loaded.model.infer(&quantized)?;
    if logits != want || class != verity_model::argmax(&want) {
        bail!("internal error: the compiled program disagrees with the quantized reference");
    }
    let id = program.hash();
    Ok((loaded, id, run))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digits(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../examples/models/digits")
            .join(name)
    }

    /// A card job's offer is sized from this dry run; the provider proves the real weights.
    #[test]
    fn a_cards_dry_run_measures_the_trace_that_the_weights_holder_proves() {
        let calibration = digits("calibration.json");
        let x = verity_model::read_samples(&calibration).unwrap().remove(0);
        for onnx in ["mlp.onnx", "cnn.onnx"] {
            // The owner's run, with the real weights, on the first calibration sample.
            let (owner, _, run) =
                import_model(&digits(onnx), &calibration, 1 << 20, false, true).unwrap();
            let w = owner.weights_commitment().unwrap().unwrap();
            let model = owner.model.card(w.commitment);
            let card = LoadedModel {
                compiled: verity_model::compile(&model).unwrap(),
                model,
            };
            assert!(card.is_card() && card.runnable().is_err());
            let dry = card.dry_run(&x).unwrap();
            assert_eq!(dry.trace_len, run.trace_len, "{onnx}");
            assert_eq!(dry.rows.memory, run.rows.memory, "{onnx}");
            // Only the argmax's branches differ: a few cycles and one hash of a block each.
            let classes = card.model.classes() as u64;
            assert!(dry.cycles.abs_diff(run.cycles) <= 4 * classes, "{onnx}");
            assert!(
                dry.rows.hasher.abs_diff(run.rows.hasher) <= 16 * classes,
                "{onnx}"
            );
        }
    }

    /// The provider derives a committed model's checked accumulators from the private data
    /// as the program reads it: the model's input from the start, zeros past the end. So a
    /// client's input padded with zeros (which the program takes) is proven, not refused; an
    /// out-of-range one gets none.
    #[test]
    fn a_provers_accumulators_follow_the_private_data_as_the_program_reads_it() {
        let calibration = digits("calibration.json");
        let x = verity_model::read_samples(&calibration).unwrap().remove(1);
        let (owner, _, _) =
            import_model(&digits("cnn.onnx"), &calibration, 1 << 20, false, true).unwrap();
        assert!(owner.compiled.hints_from_prover);
        let m = owner.model_commitment().unwrap().unwrap();
        let (q, given) = owner.quantized_input(&x).unwrap();
        assert_eq!(given.len(), 64);
        let expected = owner.model.infer(&q).unwrap();
        let run = |data: &[u64]| {
            let (program, inputs) = owner.statement(data)?;
            let run = verity_vm::execute(&program, &inputs, 1 << 20)?;
            Ok::<_, anyhow::Error>(owner.model.decode_outputs(&run.outputs)?.1)
        };
        assert_eq!(run(&given).unwrap(), expected);
        // Padded by a word and by two: other commitments, so other keys, the same prediction.
        for extra in [4, 8] {
            let mut padded = given.clone();
            padded.resize(64 + extra, 0);
            let (key, _) = owner.prover_hints(m, &padded).unwrap().unwrap();
            assert_ne!(
                Some(key),
                owner.prover_hints(m, &given).unwrap().map(|e| e.0)
            );
            assert_eq!(run(&padded).unwrap(), expected, "padded by {extra}");
        }
        // A value outside int8, which the program's range check refuses: so does the
        // reference (the provider then releases the job).
        let mut wild = given.clone();
        wild[10] = 300;
        assert!(owner.prover_hints(m, &wild).is_err());
        // A card holds no weights: it cannot derive them.
        let w = owner.weights_commitment().unwrap().unwrap();
        let model = owner.model.card(w.commitment);
        let card = LoadedModel {
            compiled: verity_model::compile(&model).unwrap(),
            model,
        };
        assert!(card.prover_hints(m, &given).is_err());
    }
}
