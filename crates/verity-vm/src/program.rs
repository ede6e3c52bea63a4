//! Assembling Miden Assembly source into a program identified by its MAST root.

use std::path::Path;
use std::sync::{Arc, LazyLock};

use miden_assembly::ast::{Module, ModuleKind};
use miden_assembly::debuginfo::{DefaultSourceManager, SourceLanguage, SourceManager, Uri};
use miden_assembly::diagnostics::reporting::PrintDiagnostic;
use miden_assembly::{Assembler, Library, Report};
use miden_core_lib::CoreLibrary;
use verity_types::{Digest, ProgramHash};

use crate::error::VmError;

/// An assembled Miden program. Its identity is its MAST root ([`Program::hash`]): two sources
/// that compile to the same MAST are the same program.
#[derive(Clone)]
pub struct Program {
    // Executed and proved only with the `prover` feature; without it, a program is assembled
    // for its hash and shape.
    #[cfg_attr(not(feature = "prover"), allow(dead_code))]
    pub(crate) inner: miden_core::program::Program,
    hash: ProgramHash,
}

impl std::fmt::Debug for Program {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Program").field("hash", &self.hash).finish()
    }
}

impl Program {
    /// Assembles `source`, linking the Miden core library (`use miden::core::...`).
    /// `name` (usually the file path) is used in error messages, which show the line and
    /// column of the problem.
    pub fn assemble(source: &str, name: &str) -> Result<Program, VmError> {
        contained(|| Program::assemble_linked(source, name, None))
    }

    /// Assembles a job's wrapped program (see [`crate::job`]): the core library and Verity's
    /// loader library `verity::private`, linked statically so any host can run it.
    pub(crate) fn assemble_with_loader(source: &str, name: &str) -> Result<Program, VmError> {
        contained(|| {
            let loader = LOADER.as_ref().map_err(|e| VmError::Assembly(e.clone()))?;
            Program::assemble_linked(source, name, Some(loader))
        })
    }

    /// Assembles `source` with the core library linked dynamically and `statically`, if
    /// given, linked into the program.
    fn assemble_linked(
        source: &str,
        name: &str,
        statically: Option<&Library>,
    ) -> Result<Program, VmError> {
        let source_manager = Arc::new(DefaultSourceManager::default());
        let file = source_manager.load(SourceLanguage::Masm, Uri::from(name), source.to_string());
        let mut assembler = Assembler::new(source_manager.clone());
        assembler
            .link_dynamic_library(CoreLibrary::default())
            .map_err(|e| VmError::Assembly(render(e)))?;
        if let Some(library) = statically {
            assembler
                .link_static_library(library)
                .map_err(|e| VmError::Assembly(render(e)))?;
        }
        let inner = assembler
            .assemble_program(file)
            .map_err(|e| VmError::Assembly(format!("failed to assemble {name}:\n{}", render(e))))?;
        let hash = ProgramHash(Digest(inner.hash().into()));
        Ok(Program { inner, hash })
    }

    /// Reads and assembles a `.masm` file.
    pub fn from_file(path: &Path) -> Result<Program, VmError> {
        let source = std::fs::read_to_string(path).map_err(|e| {
            VmError::Assembly(format!("cannot read program file {}: {e}", path.display()))
        })?;
        Program::assemble(&source, &path.display().to_string())
    }

    /// The program hash (MAST root).
    pub fn hash(&self) -> ProgramHash {
        self.hash
    }
}

/// Verity's loader library (`verity::private`), assembled once per process: every job with
/// private inputs links it, on every validator, provider and auditor.
static LOADER: LazyLock<Result<Library, String>> = LazyLock::new(|| {
    let source_manager = Arc::new(DefaultSourceManager::default());
    let loader = Module::parser(ModuleKind::Library)
        .parse_str(
            "verity::private",
            crate::job::LOADER_SOURCE,
            source_manager.clone(),
        )
        .map_err(render)?;
    Assembler::new(source_manager)
        .with_dynamic_library(CoreLibrary::default())
        .and_then(|a| a.assemble_library([loader]))
        .map(|library| (*library).clone())
        .map_err(render)
});

/// Runs Miden's parser or assembler on source from anyone: a panic inside it is contained and
/// reported as an assembly error, never taken down the caller (a validator applying a block).
pub(crate) fn contained<T>(f: impl FnOnce() -> Result<T, VmError>) -> Result<T, VmError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|_| {
        Err(VmError::Assembly(
            "the assembler could not process this program".into(),
        ))
    })
}

/// Renders a Miden diagnostic with its source snippet (file, line, caret), without colours.
fn render(report: Report) -> String {
    PrintDiagnostic::new_without_color(report).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_source_same_hash_different_source_different_hash() {
        let a = Program::assemble("begin push.1 drop end", "a.masm").unwrap();
        let b = Program::assemble("begin\n  push.1\n  drop\nend\n", "b.masm").unwrap();
        let c = Program::assemble("begin push.2 drop end", "c.masm").unwrap();
        assert_eq!(
            a.hash(),
            b.hash(),
            "formatting does not change the MAST root"
        );
        assert_ne!(a.hash(), c.hash());
    }

    #[test]
    fn assembly_errors_name_file_and_line() {
        let err =
            Program::assemble("begin\n  push.1\n  frobnicate\nend\n", "bad.masm").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("bad.masm"), "{msg}");
        assert!(msg.contains(":3:"), "line 3 is named: {msg}");
    }

    #[test]
    fn core_library_is_linked() {
        let src = "use miden::core::crypto::hashes::blake3\nbegin\n  exec.blake3::hash\nend\n";
        Program::assemble(src, "uses_core.masm").unwrap();
    }
}
