//! A map from stream id to per-stream data that costs an index, not a hash,
//! for the small sequential ids producers use; ids past [`DENSE`] (only a
//! damaged unchecked frame would claim one) go to a hash map, so a bogus id
//! cannot make the table huge.

use rustc_hash::FxHashMap;

/// Ids below this are stored densely.
pub const DENSE: u32 = 1 << 12;

/// Stream id → `T`.
#[derive(Clone, Debug, Default)]
pub struct StreamMap<T> {
    dense: Vec<Option<T>>,
    sparse: FxHashMap<u32, T>,
}

impl<T: Default> StreamMap<T> {
    /// The entry for `stream`, created with `T::default()`.
    #[inline]
    pub fn entry(&mut self, stream: u32) -> &mut T {
        // The entry nearly always exists: one bounds check and one test on
        // the way there; creating it is out of line.
        let i = stream as usize;
        if matches!(self.dense.get(i), Some(Some(_))) {
            // Present: nothing is inserted.
            self.dense[i].get_or_insert_with(T::default)
        } else {
            self.create(stream)
        }
    }

    #[cold]
    #[inline(never)]
    fn create(&mut self, stream: u32) -> &mut T {
        if stream < DENSE {
            let i = stream as usize;
            if i >= self.dense.len() {
                self.dense.resize_with(i + 1, || None);
            }
            self.dense[i].get_or_insert_with(T::default)
        } else {
            self.sparse.entry(stream).or_default()
        }
    }
}

impl<T> StreamMap<T> {
    /// The entry for `stream`, if any.
    #[inline]
    pub fn get(&self, stream: u32) -> Option<&T> {
        if stream < DENSE {
            self.dense.get(stream as usize).and_then(Option::as_ref)
        } else {
            self.sparse.get(&stream)
        }
    }

    /// The entry for `stream`, if any.
    #[inline]
    pub fn get_mut(&mut self, stream: u32) -> Option<&mut T> {
        if stream < DENSE {
            self.dense.get_mut(stream as usize).and_then(Option::as_mut)
        } else {
            self.sparse.get_mut(&stream)
        }
    }

    /// Every entry with its stream id, dense ids first.
    pub fn iter(&self) -> impl Iterator<Item = (u32, &T)> {
        self.dense
            .iter()
            .enumerate()
            .filter_map(|(i, t)| t.as_ref().map(|t| (i as u32, t)))
            .chain(self.sparse.iter().map(|(k, v)| (*k, v)))
    }
}
