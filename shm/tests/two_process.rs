//! Two real processes share a sealed memfd: the parent streams bytes to a
//! forked child through one fifo, the child echoes them back through
//! another, and each side sleeps on its eventfd when it cannot progress,
//! woken by the other through the sleep/wake protocol.
//!
//! The child maps the memfd itself from the inherited descriptor (as an app
//! maps a segment received over the control socket) and always leaves with
//! `_exit`, never by returning into the test harness.

use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::Duration;

use sluice_shm::fifo::FifoParts;
use sluice_shm::os::{self, Access, EventFd, Mapping};
use sluice_shm::{FifoConsumer, FifoProducer, Region, SleepFlag, Waker};

const SEGMENT: usize = 64 * 1024;
const FIFO: usize = 8192;
const TOTAL: u64 = 4 << 20;
/// A side that waits this long for the other has lost a wake-up.
const LOST_WAKE_UP: Duration = Duration::from_secs(10);

/// The segment's layout: two sleep flags on their own cache lines, the
/// index words of fifo A (parent → child) and B (child → parent), the data.
struct Layout {
    child_flag: usize,
    parent_flag: usize,
    a: (usize, usize, usize),
    b: (usize, usize, usize),
}

const LAYOUT: Layout = Layout {
    child_flag: 0,
    parent_flag: 64,
    a: (128, 132, 4096),
    b: (192, 196, 4096 + FIFO),
};

fn fifo_parts(region: &Region, (head, tail, data): (usize, usize, usize)) -> FifoParts {
    FifoParts {
        head: region.shared_u32(head).unwrap(),
        tail: region.shared_u32(tail).unwrap(),
        data: region.sub(data, FIFO).unwrap(),
    }
}

fn stream_byte(i: u64) -> u8 {
    (i.wrapping_mul(0x9e37_79b9) >> 11) as u8 ^ (i % 253) as u8
}

/// Child: echo everything from A to B. Returns an exit code.
fn child(fd: std::os::fd::BorrowedFd<'_>, child_efd: &EventFd, parent_efd: &EventFd) -> i32 {
    let Ok(mapping) = Mapping::map(fd, SEGMENT, Access::ReadWrite) else {
        return 10;
    };
    let region = Region::new(Arc::new(mapping));
    let (Ok(mut input), Ok(mut output)) = (
        FifoConsumer::new(fifo_parts(&region, LAYOUT.a), 0),
        FifoProducer::new(fifo_parts(&region, LAYOUT.b), 0),
    ) else {
        return 11;
    };
    let my_flag = SleepFlag::new(region.shared_u32(LAYOUT.child_flag).unwrap());
    let parent = Waker::new(region.shared_u32(LAYOUT.parent_flag).unwrap());
    let mut buf = vec![0u8; FIFO];
    let mut echoed = 0u64;
    while echoed < TOTAL {
        let (Ok(avail), Ok(free)) = (input.readable(), output.free()) else {
            return 12;
        };
        let n = (avail.min(free) as usize).min(buf.len());
        if n > 0 {
            let Ok(got) = input.read(&mut buf[..n]) else {
                return 13;
            };
            match output.write(&buf[..got]) {
                Ok(put) if put == got => {}
                _ => return 14,
            }
            echoed += got as u64;
            parent.wake(|| parent_efd.notify().unwrap());
            continue;
        }
        let mut lost = false;
        let slept = my_flag.sleep_unless(
            || input.readable().unwrap_or(0) > 0 && output.free().unwrap_or(0) > 0,
            || lost = !child_efd.wait(Some(LOST_WAKE_UP)).unwrap_or(false),
        );
        if lost {
            return 15;
        }
        if slept {
            let _ = child_efd.drain();
        }
    }
    0
}

/// Kills and reaps the child if the parent's side of the test fails.
struct ChildGuard(libc::pid_t);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if self.0 > 0 {
            // SAFETY: signals and reaps our own child, by its pid.
            unsafe {
                libc::kill(self.0, libc::SIGKILL);
                libc::waitpid(self.0, std::ptr::null_mut(), 0);
            }
        }
    }
}

#[test]
fn parent_and_forked_child_echo_through_a_shared_memfd() {
    let fd = os::memfd_create("sluice-two-process", SEGMENT as u64).unwrap();
    os::add_seals(fd.as_fd(), os::SEGMENT_SEALS).unwrap();
    let child_efd = EventFd::new().unwrap();
    let parent_efd = EventFd::new().unwrap();
    let region = Region::new(Arc::new(
        Mapping::map(fd.as_fd(), SEGMENT, Access::ReadWrite).unwrap(),
    ));
    // A fresh memfd is zeroed, so the child's flag already reads AWAKE.
    let my_flag = SleepFlag::new(region.shared_u32(LAYOUT.parent_flag).unwrap());
    let child_waker = Waker::new(region.shared_u32(LAYOUT.child_flag).unwrap());
    let mut output = FifoProducer::new(fifo_parts(&region, LAYOUT.a), 0).unwrap();
    let mut input = FifoConsumer::new(fifo_parts(&region, LAYOUT.b), 0).unwrap();

    // The child only runs `child` (mapping, atomics, copies, eventfd
    // syscalls; glibc keeps malloc usable after fork).
    // SAFETY: the child leaves through `_exit`: it never returns into the harness or runs its destructors.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed: {}", std::io::Error::last_os_error());
    if pid == 0 {
        let code =
            std::panic::catch_unwind(|| child(fd.as_fd(), &child_efd, &parent_efd)).unwrap_or(20);
        // SAFETY: ends the child immediately, without unwinding or atexit.
        unsafe { libc::_exit(code) };
    }
    let mut guard = ChildGuard(pid);

    // Round trips: send a chunk, wait for its echo. The parent usually finds
    // nothing to read right after sending, so it sleeps nearly every round.
    let mut chunk = vec![0u8; 3000];
    let mut echo = vec![0u8; FIFO];
    let (mut sent, mut received, mut rounds, mut sleeps) = (0u64, 0u64, 0u64, 0u64);
    while received < TOTAL {
        if sent == received {
            rounds += 1;
            let want = ((rounds * 7919) % chunk.len() as u64 + 1).min(TOTAL - sent) as usize;
            for (k, b) in chunk[..want].iter_mut().enumerate() {
                *b = stream_byte(sent + k as u64);
            }
            assert_eq!(
                output.write(&chunk[..want]).unwrap(),
                want,
                "fifo A is empty between rounds"
            );
            sent += want as u64;
            child_waker.wake(|| child_efd.notify().unwrap());
        }
        let got = input.read(&mut echo).unwrap();
        for (k, &b) in echo[..got].iter().enumerate() {
            assert_eq!(
                b,
                stream_byte(received + k as u64),
                "echoed byte {}",
                received + k as u64
            );
        }
        received += got as u64;
        assert!(received <= sent, "echo of bytes never sent");
        if got > 0 {
            // Reading freed room in B: the child may be waiting for it.
            child_waker.wake(|| child_efd.notify().unwrap());
        } else {
            let slept = my_flag.sleep_unless(
                || input.readable().unwrap() > 0,
                || {
                    assert!(
                        parent_efd.wait(Some(LOST_WAKE_UP)).unwrap(),
                        "the parent lost a wake-up"
                    )
                },
            );
            if slept {
                sleeps += 1;
                parent_efd.drain().unwrap();
            }
        }
    }

    let mut status = 0;
    // SAFETY: reaps our own child; `status` is a live local.
    let reaped = unsafe { libc::waitpid(pid, &mut status, 0) };
    guard.0 = 0;
    assert_eq!(reaped, pid);
    assert!(
        libc::WIFEXITED(status),
        "child did not exit normally: status {status:#x}"
    );
    assert_eq!(libc::WEXITSTATUS(status), 0, "child failed");
    assert_eq!(
        input.readable().unwrap(),
        0,
        "nothing beyond the echoed stream"
    );
    assert!(
        sleeps > 0,
        "{rounds} round trips and the parent never slept: the wake path went untested"
    );
}
