//! One thread of its own for a server's QUIC packet work.
//!
//! quinn drives each endpoint and each connection with a task of the runtime it is given. On
//! the hub's multi-threaded runtime, every packet of an idle agent (a keep-alive, then the
//! acknowledgement sent for it) woke a parked worker, which woke the other one to look for
//! work: ten thousand connected agents meant a thousand futex wake-ups a second beside the
//! packets themselves. Here the endpoint, its connections' drivers, their timers and the
//! socket run on one current-thread runtime on a dedicated thread (`poros-quic`), which waits
//! in the socket's poll itself; the hub's own tasks (admission, submissions, deliveries, the
//! store) stay on the main runtime and meet the drivers through quinn's streams as before.

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// The thread's name, as `/proc/PID/task/*/comm` shows it.
pub const THREAD_NAME: &str = "poros-quic";

/// A quinn runtime whose tasks, timers and sockets belong to the `poros-quic` thread.
pub struct QuicThread {
    handle: tokio::runtime::Handle,
}

impl fmt::Debug for QuicThread {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("QuicThread")
    }
}

impl QuicThread {
    /// The process's QUIC thread, started on first use; it lives as long as the process.
    pub fn shared() -> io::Result<Arc<QuicThread>> {
        // Behind a lock, so that two endpoints bound at once cannot start two threads.
        static SHARED: Mutex<Option<Arc<QuicThread>>> = Mutex::new(None);
        let mut shared = SHARED.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(t) = shared.as_ref() {
            return Ok(t.clone());
        }
        let t = Arc::new(QuicThread::start()?);
        *shared = Some(t.clone());
        Ok(t)
    }

    fn start() -> io::Result<QuicThread> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let handle = rt.handle().clone();
        std::thread::Builder::new()
            .name(THREAD_NAME.into())
            .spawn(move || rt.block_on(std::future::pending::<()>()))?;
        Ok(QuicThread { handle })
    }
}

impl quinn::Runtime for QuicThread {
    fn new_timer(&self, at: Instant) -> Pin<Box<dyn quinn::AsyncTimer>> {
        let _on = self.handle.enter();
        quinn::TokioRuntime.new_timer(at)
    }

    fn spawn(&self, future: Pin<Box<dyn Future<Output = ()> + Send>>) {
        self.handle.spawn(future);
    }

    fn wrap_udp_socket(
        &self,
        sock: std::net::UdpSocket,
    ) -> io::Result<Arc<dyn quinn::AsyncUdpSocket>> {
        let _on = self.handle.enter();
        quinn::TokioRuntime.wrap_udp_socket(sock)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quinn::Runtime;

    #[test]
    fn its_tasks_and_timers_run_on_the_quic_thread() {
        let t = QuicThread::shared().unwrap();
        let same = QuicThread::shared().unwrap();
        assert!(Arc::ptr_eq(&t, &same), "one thread per process");
        let (tx, rx) = std::sync::mpsc::channel();
        let timer = t.new_timer(Instant::now() + std::time::Duration::from_millis(20));
        t.spawn(Box::pin(async move {
            timer.await_done().await;
            let name = std::thread::current().name().map(str::to_string);
            let _ = tx.send(name);
        }));
        let name = rx
            .recv_timeout(std::time::Duration::from_secs(5))
            .expect("the task ran");
        assert_eq!(name.as_deref(), Some(THREAD_NAME));
    }

    trait AwaitDone {
        async fn await_done(self);
    }
    impl AwaitDone for Pin<Box<dyn quinn::AsyncTimer>> {
        async fn await_done(mut self) {
            std::future::poll_fn(|cx| self.as_mut().poll(cx)).await
        }
    }
}
