//! Reads and writes on a [`Socket`]: the blocking loops around the
//! non-blocking attempts of `crate::io`.

use std::io::{IoSlice, IoSliceMut};
use std::sync::atomic::Ordering;
use std::time::Instant;

use sluice_shm::{FifoConsumer, FifoProducer, Violation};

use crate::error::{Errno, Result};
use crate::io::Attempt;
use crate::socket::{MsgFlags, Socket};
use crate::wait::WaitOpts;

/// Skips `skip` bytes of `bufs`.
fn advance<'a>(bufs: &'a [IoSlice<'a>], mut skip: usize) -> Vec<IoSlice<'a>> {
    let mut out = Vec::with_capacity(bufs.len());
    for b in bufs {
        if skip >= b.len() {
            skip -= b.len();
            continue;
        }
        out.push(IoSlice::new(&b[skip..]));
        skip = 0;
    }
    out
}

impl Socket {
    /// Reads up to `buf.len()` bytes: queued bytes first, then a pending
    /// error once (`ECONNRESET`), then 0 at end of stream. Blocks while
    /// nothing is there (or `EAGAIN`).
    pub fn read(&self, buf: &mut [u8]) -> Result<usize> {
        self.recv(buf, MsgFlags::default())
    }

    /// [`read`](Self::read) with flags: `peek`, `dont_wait`.
    pub fn recv(&self, buf: &mut [u8], flags: MsgFlags) -> Result<usize> {
        if buf.is_empty() {
            return self.session().map(|_| 0);
        }
        if flags.peek {
            self.recv_with(&mut |f| f.peek(buf), false, flags.dont_wait)
        } else {
            self.recv_with(&mut |f| f.read(buf), true, flags.dont_wait)
        }
    }

    /// Copies queued bytes without consuming them (`MSG_PEEK`).
    pub fn peek(&self, buf: &mut [u8]) -> Result<usize> {
        self.recv(buf, MsgFlags { peek: true, dont_wait: false })
    }

    /// Reads into `bufs` in order (`readv(2)`).
    pub fn readv(&self, bufs: &mut [IoSliceMut<'_>]) -> Result<usize> {
        if bufs.iter().all(|b| b.is_empty()) {
            return self.session().map(|_| 0);
        }
        self.recv_with(&mut |f| f.read_vectored(bufs), true, false)
    }

    /// Bytes queued for reading (`FIONREAD`).
    pub fn nread(&self) -> Result<usize> {
        let s = self.session()?;
        Ok(s.daemon().and_then(|h| self.vcl.slots.words(h.index)).map_or(0, |w| w.rx_readable() as usize))
    }

    fn recv_with(
        &self,
        op: &mut dyn FnMut(&mut FifoConsumer) -> Result<usize, Violation>,
        consume: bool,
        dont_wait: bool,
    ) -> Result<usize> {
        let vcl = &*self.vcl;
        let mut deadline = None;
        let mut first = true;
        loop {
            vcl.drain();
            let s = self.session()?;
            if let Attempt::Done(n) = vcl.try_recv(self.key, s, op, consume)? {
                return Ok(n);
            }
            if dont_wait || s.nonblocking.load(Ordering::Relaxed) {
                return Err(Errno::EAGAIN);
            }
            if first {
                deadline = s.read_timeout().map(|t| Instant::now() + t);
                first = false;
            }
            let key = self.key;
            if !vcl.wait_until(&[&s.waiters], WaitOpts::interruptible(deadline), || vcl.recv_ready(key, s))? {
                return Err(Errno::EAGAIN);
            }
        }
    }

    /// Writes `buf`. Blocking: returns once all of it is in the TX fifo, or
    /// with the count so far when a signal or the write timeout ends the
    /// wait (`EINTR`/`EAGAIN` if nothing was written). Non-blocking: what
    /// fits, or `EAGAIN`. A reset connection fails with `ECONNRESET` once,
    /// then `EPIPE` (no `SIGPIPE`: that is the preload's business).
    pub fn write(&self, buf: &[u8]) -> Result<usize> {
        self.send(buf, MsgFlags::default())
    }

    /// [`write`](Self::write) with flags: `dont_wait`.
    pub fn send(&self, buf: &[u8], flags: MsgFlags) -> Result<usize> {
        self.send_with(buf.len(), &mut |f, done| f.write(&buf[done..]), flags.dont_wait)
    }

    /// Writes `bufs` in order (`writev(2)`).
    pub fn writev(&self, bufs: &[IoSlice<'_>]) -> Result<usize> {
        let total = bufs.iter().map(|b| b.len()).sum();
        self.send_with(
            total,
            &mut |f, done| if done == 0 { f.write_vectored(bufs) } else { f.write_vectored(&advance(bufs, done)) },
            false,
        )
    }

    fn send_with(
        &self,
        total: usize,
        op: &mut dyn FnMut(&mut FifoProducer, usize) -> Result<usize, Violation>,
        dont_wait: bool,
    ) -> Result<usize> {
        let vcl = &*self.vcl;
        if total == 0 {
            return self.session().map(|_| 0);
        }
        let mut done = 0;
        let mut deadline = None;
        let mut first = true;
        let partial = |done: usize, e: Errno| if done > 0 { Ok(done) } else { Err(e) };
        loop {
            vcl.drain();
            let s = match self.session() {
                Ok(s) => s,
                Err(e) => return partial(done, e),
            };
            let nonblocking = dont_wait || s.nonblocking.load(Ordering::Relaxed);
            match vcl.try_send(self.key, s, &mut |f| op(f, done)) {
                Ok(Attempt::Done(n)) => {
                    done += n;
                    if done >= total || nonblocking {
                        return Ok(done);
                    }
                    continue;
                }
                Ok(Attempt::WouldBlock) => {}
                Err(e) => return partial(done, e),
            }
            if nonblocking {
                return partial(done, Errno::EAGAIN);
            }
            if first {
                deadline = s.write_timeout().map(|t| Instant::now() + t);
                first = false;
            }
            let key = self.key;
            match vcl.wait_until(&[&s.waiters], WaitOpts::interruptible(deadline), || vcl.send_ready(key, s)) {
                Ok(true) => {}
                Ok(false) => return partial(done, Errno::EAGAIN),
                Err(e) => return partial(done, e),
            }
        }
    }
}
