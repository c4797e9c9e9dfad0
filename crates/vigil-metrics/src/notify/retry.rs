//! The retry loop shared by every target, and the error of one attempt.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use super::RetryPolicy;

/// Why one attempt (or the preparation before the first) failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The action or notification cannot be sent as it is (bad URL, bad
    /// address, email without SMTP config); never retried.
    #[error("invalid {field}: {message}")]
    Invalid {
        /// What was wrong (`webhook url`, `email to`, ...).
        field: &'static str,
        /// Expected versus got.
        message: String,
    },
    /// No connection, or it broke (DNS, refused, reset, TLS); retried.
    #[error("connection failed: {0}")]
    Connect(String),
    /// The attempt ran out of time; retried.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// The peer answered with a non-2xx HTTP status; retried on 5xx and 429.
    #[error("http status {status}: {body}")]
    Status {
        /// The status code.
        status: u16,
        /// The start of the answer's body, for the log.
        body: String,
        /// A 429's or 503's `Retry-After`, in seconds.
        retry_after: Option<Duration>,
    },
    /// The SMTP server refused; retried unless the reply was permanent (5yz).
    #[error("smtp: {message}")]
    Smtp {
        /// A permanent (5yz) reply or a client-side error.
        permanent: bool,
        /// lettre's description.
        message: String,
    },
}

impl SendError {
    /// Whether another attempt may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            SendError::Invalid { .. } => false,
            SendError::Connect(_) | SendError::Timeout(_) => true,
            SendError::Status { status, .. } => *status >= 500 || *status == 429,
            SendError::Smtp { permanent, .. } => !permanent,
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            SendError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// Runs `attempt` until it succeeds, fails for good, or `policy` says stop.
/// `attempt` gets its timeout (the per-attempt timeout cut to the time left
/// before the deadline). Returns the value or the last error, with the
/// number of attempts made.
pub async fn run<T, F, Fut>(
    policy: &RetryPolicy,
    request_timeout: Duration,
    mut attempt: F,
) -> (u32, Result<T, SendError>)
where
    F: FnMut(Duration) -> Fut,
    Fut: Future<Output = Result<T, SendError>>,
{
    let start = Instant::now();
    let deadline = start + policy.deadline;
    let mut attempts = 0;
    loop {
        attempts += 1;
        let timeout = request_timeout.min(deadline.saturating_duration_since(Instant::now()));
        let result = match tokio::time::timeout(timeout, attempt(timeout)).await {
            Ok(result) => result,
            Err(_) => Err(SendError::Timeout(timeout)),
        };
        let err = match result {
            Ok(value) => return (attempts, Ok(value)),
            Err(err) => err,
        };
        if !err.is_retryable() || attempts >= policy.max_attempts {
            return (attempts, Err(err));
        }
        let wait = err
            .retry_after()
            .map_or(policy.backoff(attempts), |after| {
                after.max(policy.backoff(attempts))
            })
            .min(policy.max_backoff);
        // A retry that could not start before the deadline is not made.
        if Instant::now() + wait >= deadline {
            return (attempts, Err(err));
        }
        tracing::debug!(attempt = attempts, wait_ms = wait.as_millis() as u64, error = %err, "delivery attempt failed, retrying");
        tokio::time::sleep(wait).await;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::cell::RefCell;

    use super::*;

    fn policy(max_attempts: u32, deadline_s: u64) -> RetryPolicy {
        RetryPolicy {
            max_attempts,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(30),
            deadline: Duration::from_secs(deadline_s),
        }
    }

    fn status(code: u16) -> SendError {
        SendError::Status {
            status: code,
            body: String::new(),
            retry_after: None,
        }
    }

    /// Feeds the results in order and records when each attempt started.
    async fn scripted(
        policy: &RetryPolicy,
        results: Vec<Result<(), SendError>>,
    ) -> (u32, Result<(), SendError>, Vec<Duration>) {
        let start = Instant::now();
        let starts = RefCell::new(Vec::new());
        let results = RefCell::new(results.into_iter());
        let (attempts, result) = run(policy, Duration::from_secs(10), |_| {
            starts.borrow_mut().push(start.elapsed());
            let next = results.borrow_mut().next().unwrap();
            async move { next }
        })
        .await;
        (attempts, result, starts.into_inner())
    }

    #[tokio::test(start_paused = true)]
    async fn retries_5xx_and_429_with_exponential_backoff() {
        let (attempts, result, starts) = scripted(
            &policy(3, 120),
            vec![Err(status(503)), Err(status(429)), Ok(())],
        )
        .await;
        assert_eq!(attempts, 3);
        assert_eq!(result, Ok(()));
        let secs: Vec<u64> = starts.iter().map(Duration::as_secs).collect();
        assert_eq!(secs, [0, 1, 3]);
    }

    #[tokio::test(start_paused = true)]
    async fn other_4xx_is_not_retried() {
        let (attempts, result, _) = scripted(&policy(3, 120), vec![Err(status(404))]).await;
        assert_eq!(attempts, 1);
        assert_eq!(result, Err(status(404)));
    }

    #[tokio::test(start_paused = true)]
    async fn gives_up_after_max_attempts_with_the_last_error() {
        let (attempts, result, _) = scripted(
            &policy(2, 120),
            vec![Err(SendError::Connect("refused".into())), Err(status(502))],
        )
        .await;
        assert_eq!(attempts, 2);
        assert_eq!(result, Err(status(502)));
    }

    #[tokio::test(start_paused = true)]
    async fn no_attempt_starts_past_the_deadline() {
        // Waits 1 s, 2 s, 4 s: the fourth attempt would start at 7 s > 5 s.
        let errors = (0..10).map(|_| Err(status(500))).collect();
        let (attempts, _, starts) = scripted(&policy(10, 5), errors).await;
        assert_eq!(attempts, 3);
        assert_eq!(starts.last().unwrap().as_secs(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_lengthens_the_wait() {
        let throttled = SendError::Status {
            status: 429,
            body: String::new(),
            retry_after: Some(Duration::from_secs(7)),
        };
        let (_, _, starts) = scripted(&policy(2, 120), vec![Err(throttled), Ok(())]).await;
        assert_eq!(starts[1].as_secs(), 7);
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_attempt_times_out_and_is_retried() {
        let calls = RefCell::new(0);
        let (attempts, result) = run(&policy(2, 120), Duration::from_secs(10), |_| {
            *calls.borrow_mut() += 1;
            let first = *calls.borrow() == 1;
            async move {
                if first {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                }
                Ok::<_, SendError>(())
            }
        })
        .await;
        assert_eq!((attempts, result), (2, Ok(())));
    }
}
