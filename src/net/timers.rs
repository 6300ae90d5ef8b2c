//! Idle timeouts: the loop's connections in order of last activity.
//!
//! An intrusive doubly linked list over connection slots, least recently active first.
//! Activity moves a connection to the back; closing unlinks it; both O(1). Since the
//! timeout is the same for every connection, the front is always the first to expire, so
//! the loop sleeps until the front's deadline and closes connections exactly one timeout
//! after their last activity, with no entry left behind by a closed connection and no scan.

use crate::clock::Nanos;

const NONE: u32 = u32::MAX;

#[derive(Clone, Copy)]
struct Link {
    prev: u32,
    next: u32,
    last_active: Nanos,
    linked: bool,
}

/// Connection slots ordered by last activity.
pub struct IdleList {
    links: Vec<Link>,
    head: u32,
    tail: u32,
    len: usize,
}

impl Default for IdleList {
    fn default() -> IdleList {
        IdleList {
            links: Vec::new(),
            head: NONE,
            tail: NONE,
            len: 0,
        }
    }
}

impl IdleList {
    /// Marks slot `index` active at `now` (linking it if it is not).
    #[inline]
    pub fn touch(&mut self, index: usize, now: Nanos) {
        let i = index as u32;
        if self.tail == i {
            // Already the most recently active (the common case: one busy connection).
            self.links[index].last_active = now;
            return;
        }
        if index >= self.links.len() {
            self.links.resize(
                index + 1,
                Link {
                    prev: NONE,
                    next: NONE,
                    last_active: 0,
                    linked: false,
                },
            );
        }
        if self.links[index].linked {
            self.unlink(index);
        }
        let link = &mut self.links[index];
        link.prev = self.tail;
        link.next = NONE;
        link.last_active = now;
        link.linked = true;
        if self.tail == NONE {
            self.head = i;
        } else {
            self.links[self.tail as usize].next = i;
        }
        self.tail = i;
        self.len += 1;
    }

    /// Whether slot `index` is in the list.
    #[inline]
    pub fn contains(&self, index: usize) -> bool {
        self.links.get(index).is_some_and(|l| l.linked)
    }

    /// Forgets slot `index` (its connection closed).
    #[inline]
    pub fn remove(&mut self, index: usize) {
        if self.links.get(index).is_some_and(|l| l.linked) {
            self.unlink(index);
        }
    }

    fn unlink(&mut self, index: usize) {
        let Link { prev, next, .. } = self.links[index];
        if prev == NONE {
            self.head = next;
        } else {
            self.links[prev as usize].next = next;
        }
        if next == NONE {
            self.tail = prev;
        } else {
            self.links[next as usize].prev = prev;
        }
        self.links[index].linked = false;
        self.len -= 1;
    }

    /// The least recently active slot and when it was last active.
    #[inline]
    pub fn front(&self) -> Option<(usize, Nanos)> {
        (self.head != NONE).then(|| {
            (
                self.head as usize,
                self.links[self.head as usize].last_active,
            )
        })
    }

    /// Slots linked now.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no slot is linked.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Slots due at `now` for `timeout`, front first (what the loop closes).
    fn due(list: &IdleList, now: Nanos, timeout: Nanos) -> Option<usize> {
        list.front()
            .and_then(|(i, last)| (last + timeout <= now).then_some(i))
    }

    #[test]
    fn a_connection_active_again_expires_one_timeout_after_its_last_activity() {
        // The scenario that kept connections open up to twice the timeout with a FIFO of
        // deadlines: A opens at 0 and is active at 6, C opens at 9. With a timeout of 10,
        // A is due at 16 (its entry was re-queued behind C's 19 before).
        let mut l = IdleList::default();
        l.touch(0, 0);
        l.touch(0, 6);
        l.touch(1, 9);
        assert_eq!(due(&l, 15, 10), None);
        assert_eq!(due(&l, 16, 10), Some(0), "A exactly at 6 + 10");
        l.remove(0);
        assert_eq!(due(&l, 18, 10), None);
        assert_eq!(due(&l, 19, 10), Some(1), "C at 9 + 10");
    }

    #[test]
    fn closed_connections_leave_nothing_behind() {
        let mut l = IdleList::default();
        for i in 0..1000 {
            l.touch(i, i as Nanos);
        }
        for i in 0..1000 {
            l.remove(i);
        }
        assert!(l.is_empty());
        assert_eq!(l.front(), None);
        l.remove(5); // removing twice is harmless
        l.touch(7, 1);
        assert_eq!(l.front(), Some((7, 1)));
        assert_eq!(l.len(), 1);
    }

    #[test]
    fn order_follows_activity() {
        let mut l = IdleList::default();
        l.touch(0, 1);
        l.touch(1, 2);
        l.touch(2, 3);
        l.touch(0, 4);
        l.touch(1, 5);
        let mut order = Vec::new();
        while let Some((i, t)) = l.front() {
            order.push((i, t));
            l.remove(i);
        }
        assert_eq!(order, vec![(2, 3), (0, 4), (1, 5)]);
    }
}
