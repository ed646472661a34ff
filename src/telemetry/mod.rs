//! What roomd tells its operator: logs, Prometheus metrics, and one line and a request id per
//! request.

pub mod logs;
pub mod metrics;
pub mod request_log;
