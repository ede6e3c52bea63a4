//! Liveness audits filed by validators.

use verity_types::{Address, AuditReport};

use super::Ctx;
use crate::error::TxError;

impl Ctx<'_> {
    pub(super) fn require_validator(
        &self,
        who: &Address,
        what: &'static str,
    ) -> Result<(), TxError> {
        if !self.state.validators.contains(who) {
            return Err(TxError::NotValidator(what));
        }
        Ok(())
    }

    pub(super) fn audit(&mut self, auditor: Address, report: &AuditReport) -> Result<(), TxError> {
        use crate::trust::{AUDIT_EPOCH_BLOCKS, MAX_PROBES_PER_EPOCH};
        self.require_validator(&auditor, "file audits")?;
        let stake = self.state.stakes.get(&auditor).map_or(0, |s| s.validator);
        if stake == 0 {
            return Err(TxError::BadAudit("only a staked validator audits".into()));
        }
        let current = self.h() / AUDIT_EPOCH_BLOCKS;
        if report.epoch >= current {
            return Err(TxError::BadAudit(format!(
                "epoch {} has not ended (this is epoch {current})",
                report.epoch
            )));
        }
        if report.epoch + 2 < current {
            return Err(TxError::BadAudit(format!(
                "epoch {} is too old to report (this is epoch {current})",
                report.epoch
            )));
        }
        if self.state.audits.contains_key(&(report.epoch, auditor)) {
            return Err(TxError::BadAudit(format!(
                "{} already audited epoch {}",
                auditor.short(),
                report.epoch
            )));
        }
        let mut seen = std::collections::BTreeSet::new();
        for l in &report.liveness {
            if !seen.insert(l.provider) {
                return Err(TxError::BadAudit(format!(
                    "provider {} appears twice",
                    l.provider.short()
                )));
            }
            if l.answered > l.probes || l.probes > MAX_PROBES_PER_EPOCH {
                return Err(TxError::BadAudit(format!(
                    "provider {}: {} of {} probes answered (at most {MAX_PROBES_PER_EPOCH} probes)",
                    l.provider.short(),
                    l.answered,
                    l.probes
                )));
            }
            if !self.state.endpoints.contains_key(&l.provider) {
                return Err(TxError::BadAudit(format!(
                    "provider {} announced no endpoint",
                    l.provider.short()
                )));
            }
        }
        // --- valid: weight every probe by the auditor's stake.
        for l in &report.liveness {
            let record = self.state.liveness.entry(l.provider).or_default();
            record.weighted_probes += u128::from(stake) * u128::from(l.probes);
            record.weighted_answered += u128::from(stake) * u128::from(l.answered);
            record.reports += 1;
            if l.answered > 0 {
                record.last_median_latency_ms = l.median_latency_ms;
            }
        }
        self.state
            .audits
            .insert((report.epoch, auditor), report.clone());
        self.state
            .auditors
            .entry(auditor)
            .or_default()
            .liveness_audits += 1;
        Ok(())
    }
}
