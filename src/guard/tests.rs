//! The head clock's timer on a real socket pair.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Wake, Waker};

use pingora::protocols::l4::stream::Stream as L4Stream;
use tokio::io::AsyncWriteExt;

use super::*;

/// A waker whose holders can be counted.
struct Counted;

impl Wake for Counted {
    fn wake(self: Arc<Self>) {}
}

fn poll_read(guard: &mut HeadGuard, waker: &Waker) -> Poll<io::Result<usize>> {
    let mut buf = [0u8; 64];
    let mut read = ReadBuf::new(&mut buf);
    let mut cx = Context::from_waker(waker);
    Pin::new(guard)
        .poll_read(&mut cx, &mut read)
        .map_ok(|()| read.filled().len())
}

/// A head that had to wait armed the timer with the waiting task's waker. Once the head is in,
/// the next read (an upgraded connection's tunnel, in a task of its own) drops the timer, so
/// that nothing keeps the finished task's memory alive.
#[tokio::test]
async fn a_head_that_waited_leaves_no_waker_behind() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut client = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    let (server, _) = listener.accept().await.unwrap();
    let stream: Stream = Box::new(L4Stream::from(server));
    let mut guard = HeadGuard::new(stream, Duration::from_secs(30), Instant::now());

    let first = Arc::new(Counted);
    let waker = Waker::from(first.clone());
    assert!(poll_read(&mut guard, &waker).is_pending());
    assert!(guard.armed, "a head that waits arms the clock");
    client.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
    loop {
        match poll_read(&mut guard, &waker) {
            Poll::Ready(read) => {
                assert!(read.unwrap() > 0);
                break;
            }
            Poll::Pending => tokio::task::yield_now().await,
        }
    }
    drop(waker);
    // What `head_done` does once the proxy has the whole head.
    guard.state.store(DONE, Ordering::Relaxed);

    let next = Waker::from(Arc::new(Counted));
    assert!(poll_read(&mut guard, &next).is_pending());
    assert!(
        guard.timer.is_none(),
        "the clock is dropped once the head is in"
    );
    assert_eq!(
        Arc::strong_count(&first),
        1,
        "something still holds the waker of the task that read the head"
    );
}
