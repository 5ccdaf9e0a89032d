//! A Prometheus gauge held up while something lives: sequences waiting for
//! an engine slot, and sequences running.

/// Adds one to the gauge `name` until dropped.
pub struct GaugeGuard(&'static str);

impl GaugeGuard {
    pub fn new(name: &'static str) -> Self {
        metrics::gauge!(name).increment(1.0);
        Self(name)
    }
}

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        metrics::gauge!(self.0).decrement(1.0);
    }
}
