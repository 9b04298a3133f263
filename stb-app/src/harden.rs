//! Process hardening: no core dumps (a dump would carry KP, D and the channel keys to disk)
//! and no ptrace attach by other processes of the same user.

/// Applies the hardening; failures are logged, not fatal (some sandboxes forbid prctl).
pub fn harden_process() {
    if let Err(e) =
        rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
    {
        tracing::warn!(error = %e, "could not disable core dumps (PR_SET_DUMPABLE)");
    }
    let none = rustix::process::Rlimit {
        current: Some(0),
        maximum: Some(0),
    };
    if let Err(e) = rustix::process::setrlimit(rustix::process::Resource::Core, none) {
        tracing::warn!(error = %e, "could not set RLIMIT_CORE to 0");
    }
}
