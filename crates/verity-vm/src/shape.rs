//! What a program will cost to assemble and what it reads, found from its syntax tree before
//! anything is assembled.
//!
//! The ledger assembles every submitted program inside the state transition, on every
//! validator. Miden's assembler copies the body of `repeat.N` N times (up to a million, and
//! repeats nest), so a few hundred bytes of source can take seconds to minutes to assemble.
//! [`inspect`] parses the source (linear in its size) and computes an upper bound on the
//! expanded program, so the ledger can refuse an oversized one before assembling it.
//!
//! It also lists the instructions that read the advice provider directly: such reads are
//! unverified hints, so a program using them is not determined by its public inputs, and an
//! optimistic result for it could be "disproved" by a proof with other hints.

use std::collections::BTreeMap;
use std::sync::Arc;

use miden_assembly::ast::{
    Block, Instruction, InvocationTarget, Module, ModuleKind, Op, SystemEventNode,
};
use miden_assembly::debuginfo::{DefaultSourceManager, SourceLanguage, SourceManager, Uri};
use miden_assembly::diagnostics::reporting::PrintDiagnostic;
use miden_assembly::{Path as MasmPath, SourceSpan, Spanned};

/// Miden's largest `repeat` count (`miden_assembly_syntax::MAX_REPEAT_COUNT`, not re-exported).
const MAX_REPEAT_COUNT: u32 = 1_000_000;

use crate::error::VmError;

/// An instruction that reads raw advice, and where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdviceRead {
    pub instruction: String,
    /// 1-based line in the source.
    pub line: u32,
}

/// What [`inspect`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgramShape {
    /// Upper bound on the operations the assembled program holds once every `repeat` is
    /// expanded and every local procedure counted at each call site.
    pub expanded_ops: u64,
    /// Instructions in the program's own code that read the advice provider, in source order.
    pub advice_reads: Vec<AdviceRead>,
    /// Byte offset of the first instruction of the `begin ... end` block.
    pub entry_offset: Option<usize>,
}

/// Parses `source` and measures it. Fails on a syntax error (with the line), never panics:
/// the ledger runs it on source from anyone, so a panic inside Miden's parser is contained and
/// reported as an error.
pub fn inspect(source: &str, name: &str) -> Result<ProgramShape, VmError> {
    crate::program::contained(|| inspect_inner(source, name))
}

/// Deepest nesting of blocks Miden accepts (its assembler's own limit).
pub const MAX_NESTING: usize = 256;

/// How deeply `source` nests blocks, from its tokens alone (comments skipped): Miden's parser
/// and analysis recurse per level, and a stack overflow cannot be contained, so a program
/// nested deeper than [`MAX_NESTING`] is refused before it is parsed.
fn nesting_depth(source: &str) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    for line in source.lines() {
        let code = line.split('#').next().unwrap_or("");
        for token in code.split_whitespace() {
            let opens = token == "begin"
                || token == "proc"
                || token.starts_with("if.")
                || token.starts_with("while.")
                || token.starts_with("repeat.");
            if opens {
                depth += 1;
                deepest = deepest.max(depth);
            } else if token == "end" {
                depth = depth.saturating_sub(1);
            }
        }
    }
    deepest
}

fn inspect_inner(source: &str, name: &str) -> Result<ProgramShape, VmError> {
    let depth = nesting_depth(source);
    if depth > MAX_NESTING {
        return Err(VmError::Assembly(format!(
            "{name} nests blocks {depth} deep; the limit is {MAX_NESTING}"
        )));
    }
    let source_manager = Arc::new(DefaultSourceManager::default());
    let file = source_manager.load(SourceLanguage::Masm, Uri::from(name), source.to_string());
    let module = Module::parser(ModuleKind::Executable)
        .parse(MasmPath::exec_path(), file, source_manager.clone())
        .map_err(|e| {
            VmError::Assembly(format!(
                "failed to parse {name}:\n{}",
                PrintDiagnostic::new_without_color(e)
            ))
        })?;
    let mut walker = Walker {
        module: &module,
        sizes: BTreeMap::new(),
        in_progress: Vec::new(),
        reads: Vec::new(),
    };
    let entry_offset = module
        .procedures()
        .find(|p| p.is_entrypoint())
        .and_then(|p| p.body().iter().next())
        .map(|op| op.span().start().to_usize());
    let mut total: u64 = 0;
    for procedure in module.procedures() {
        let size = walker.procedure_size(procedure.name().as_str());
        total = total.saturating_add(size);
    }
    let mut advice_reads: Vec<AdviceRead> = std::mem::take(&mut walker.reads)
        .into_iter()
        .map(|(span, instruction)| AdviceRead {
            instruction,
            line: source_manager
                .file_line_col(span)
                .map(|l| l.line.to_u32())
                .unwrap_or(0),
        })
        .collect();
    advice_reads.sort_by_key(|r| r.line);
    Ok(ProgramShape {
        expanded_ops: total,
        advice_reads,
        entry_offset,
    })
}

struct Walker<'m> {
    module: &'m Module,
    /// Expanded size of each local procedure, computed once.
    sizes: BTreeMap<String, u64>,
    /// Procedures being measured (Miden forbids recursion; this only guards the walk).
    in_progress: Vec<String>,
    reads: Vec<(SourceSpan, String)>,
}

impl Walker<'_> {
    fn procedure_size(&mut self, name: &str) -> u64 {
        if let Some(size) = self.sizes.get(name) {
            return *size;
        }
        if self.in_progress.iter().any(|n| n == name) {
            return 1;
        }
        let Some(procedure) = self.module.procedures().find(|p| p.name().as_str() == name) else {
            return 1;
        };
        self.in_progress.push(name.to_string());
        let size = self.block_size(procedure.body());
        self.in_progress.pop();
        self.sizes.insert(name.to_string(), size);
        size
    }

    fn block_size(&mut self, block: &Block) -> u64 {
        let mut total: u64 = 0;
        for op in block.iter() {
            let size = match op {
                Op::If {
                    then_blk, else_blk, ..
                } => 1u64
                    .saturating_add(self.block_size(then_blk))
                    .saturating_add(self.block_size(else_blk)),
                Op::While { body, .. } => 1u64.saturating_add(self.block_size(body)),
                Op::Repeat { count, body, .. } => {
                    // Constants are folded by the parser's semantic pass; an unfolded one is
                    // counted at the assembler's maximum.
                    let n = match count {
                        miden_assembly::ast::Immediate::Value(v) => u64::from(*v.inner()),
                        miden_assembly::ast::Immediate::Constant(_) => u64::from(MAX_REPEAT_COUNT),
                    };
                    n.saturating_mul(self.block_size(body))
                }
                Op::Inst(inst) => {
                    self.note_advice_read(inst.span(), inst.inner());
                    match inst.inner() {
                        Instruction::Exec(InvocationTarget::Symbol(name))
                        | Instruction::Call(InvocationTarget::Symbol(name)) => {
                            1u64.saturating_add(self.procedure_size(name.as_str()))
                        }
                        _ => 1,
                    }
                }
            };
            total = total.saturating_add(size);
        }
        total
    }

    fn note_advice_read(&mut self, span: SourceSpan, inst: &Instruction) {
        let name = match inst {
            Instruction::AdvPush => "adv_push",
            Instruction::AdvPushW => "adv_pushw",
            Instruction::AdvLoadW => "adv_loadw",
            Instruction::AdvPipe => "adv_pipe",
            Instruction::MTreeGet => "mtree_get",
            Instruction::MTreeSet => "mtree_set",
            Instruction::MTreeMerge => "mtree_merge",
            Instruction::MTreeVerify | Instruction::MTreeVerifyWithError(_) => "mtree_verify",
            Instruction::Emit | Instruction::EmitImm(_) => "emit",
            Instruction::SysEvent(event) => match event {
                SystemEventNode::PushMapVal => "adv.push_mapval",
                SystemEventNode::PushMapValCount => "adv.push_mapval_count",
                SystemEventNode::PushMapValN0
                | SystemEventNode::PushMapValN4
                | SystemEventNode::PushMapValN8 => "adv.push_mapvaln",
                SystemEventNode::HasMapKey => "adv.has_mapkey",
                SystemEventNode::PushMtNode => "adv.push_mtnode",
                SystemEventNode::InsertMem
                | SystemEventNode::InsertHdword
                | SystemEventNode::InsertHdwordWithDomain
                | SystemEventNode::InsertHqword
                | SystemEventNode::InsertHperm => return,
            },
            Instruction::DynExec | Instruction::DynCall => "dynexec/dyncall",
            _ => return,
        };
        self.reads.push((span, name.to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_multiply_and_nest() {
        let small = inspect("begin repeat.10 push.1 drop end end", "a.masm").unwrap();
        assert_eq!(small.expanded_ops, 20);
        let nested = inspect(
            "begin repeat.1000 repeat.1000 push.1 drop end end end",
            "b.masm",
        )
        .unwrap();
        assert_eq!(nested.expanded_ops, 2_000_000);
    }

    #[test]
    fn local_procedures_count_at_each_call_site() {
        let src =
            "proc heavy\n repeat.100 push.1 drop end\nend\nbegin\n repeat.50 exec.heavy end\nend\n";
        let shape = inspect(src, "c.masm").unwrap();
        assert!(shape.expanded_ops >= 50 * 200, "{}", shape.expanded_ops);
    }

    #[test]
    fn raw_advice_reads_are_listed_with_their_lines() {
        let src = "begin\n  push.1 drop\n  adv_push\n  adv_loadw\nend\n";
        let shape = inspect(src, "d.masm").unwrap();
        assert_eq!(
            shape.advice_reads,
            vec![
                AdviceRead {
                    instruction: "adv_push".into(),
                    line: 3
                },
                AdviceRead {
                    instruction: "adv_loadw".into(),
                    line: 4
                },
            ]
        );
        let pure = inspect("begin push.1 push.2 add end", "e.masm").unwrap();
        assert!(pure.advice_reads.is_empty());
    }

    #[test]
    fn deep_nesting_is_refused_before_parsing() {
        let deep = format!(
            "begin\n{}push.1 drop\n{}end\n",
            "if.true\n".repeat(5_000),
            "end\n".repeat(5_000)
        );
        // On a small stack, as a validator's worker thread might have: no overflow.
        let handle = std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(move || inspect(&deep, "deep.masm"))
            .unwrap();
        let err = handle.join().expect("no stack overflow").unwrap_err();
        assert!(err.to_string().contains("nests blocks"), "{err}");
        let fine = format!(
            "begin\n{}push.1 drop\n{}end\n",
            "if.true\n".repeat(10),
            "end\n".repeat(10)
        );
        assert!(inspect(&fine, "fine.masm").is_ok());
    }

    #[test]
    fn syntax_errors_are_errors() {
        assert!(inspect("begin frobnicate end", "f.masm").is_err());
        assert!(inspect("", "g.masm").is_err());
    }
}
