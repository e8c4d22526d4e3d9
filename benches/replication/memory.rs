//! This process's peak resident memory (Linux `VmHWM`), reset between stages.

/// Resets the peak to the current resident size (`/proc/self/clear_refs`, Linux 4.0 and
/// later; a no-op elsewhere, where the peak is then the process's).
pub(crate) fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// The peak resident memory since the last [`reset_peak`], in MiB (0 where unknown).
pub(crate) fn peak_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0)
}
