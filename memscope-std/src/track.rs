//! Naming allocations (`track!`) and attributing them to phases
//! (`track_scope!`).
//!
//! Both write a record into the calling thread's stream, so they cost nothing
//! when not recording. A thread with no stream yet gets one through a 1-byte
//! allocation (recorded like any other). If the thread's ring stays full for
//! 10 ms the record is dropped (names and scopes are not heap events and are
//! not counted in the end record's totals).

use memscope_core::wire::{Name, Record};
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::rc::Rc;
use std::sync::Arc;

/// A value that owns a heap block `track!` can name.
///
/// `heap_addr` returns an address **inside** the block (not always its first
/// byte: an `Rc`'s value sits after its counters), or `None` when the value
/// owns no block right now (an empty `Vec`, a zero-sized `Box`). Readers match
/// a name to the live block that contains the address.
///
/// ```
/// use memscope_std::Trackable;
///
/// struct Image { pixels: Vec<u32> }
///
/// impl Trackable for Image {
///     fn heap_addr(&self) -> Option<*const u8> {
///         self.pixels.heap_addr()
///     }
/// }
/// ```
pub trait Trackable {
    /// An address inside the main heap block, if there is one.
    fn heap_addr(&self) -> Option<*const u8>;
}

impl<T> Trackable for Vec<T> {
    fn heap_addr(&self) -> Option<*const u8> {
        (self.capacity() > 0 && size_of::<T>() > 0).then(|| self.as_ptr().cast())
    }
}

impl Trackable for String {
    fn heap_addr(&self) -> Option<*const u8> {
        (self.capacity() > 0).then(|| self.as_ptr())
    }
}

impl<T: ?Sized> Trackable for Box<T> {
    fn heap_addr(&self) -> Option<*const u8> {
        (size_of_val::<T>(self) > 0).then(|| (&**self as *const T).cast())
    }
}

/// The address of the value, which lies inside the reference-counted block.
impl<T: ?Sized> Trackable for Rc<T> {
    fn heap_addr(&self) -> Option<*const u8> {
        Some(Rc::as_ptr(self).cast())
    }
}

/// The address of the value, which lies inside the reference-counted block.
impl<T: ?Sized> Trackable for Arc<T> {
    fn heap_addr(&self) -> Option<*const u8> {
        Some(Arc::as_ptr(self).cast())
    }
}

impl<T> Trackable for VecDeque<T> {
    fn heap_addr(&self) -> Option<*const u8> {
        let (a, b) = self.as_slices();
        let first = a.first().or(b.first())?;
        (size_of::<T>() > 0).then_some((first as *const T).cast())
    }
}

/// The block that holds the map's first entry (a `HashMap` keeps all entries
/// in one block; `None` when the map is empty).
impl<K, V, S> Trackable for HashMap<K, V, S> {
    fn heap_addr(&self) -> Option<*const u8> {
        let (k, _) = self.iter().next()?;
        (size_of::<K>() > 0).then_some((k as *const K).cast())
    }
}

/// The node that holds the first entry: a `BTreeMap` is many blocks (one per
/// node) and only that one is named.
impl<K, V> Trackable for BTreeMap<K, V> {
    fn heap_addr(&self) -> Option<*const u8> {
        let (k, _) = self.iter().next()?;
        (size_of::<K>() > 0).then_some((k as *const K).cast())
    }
}

impl<T: Trackable + ?Sized> Trackable for &T {
    fn heap_addr(&self) -> Option<*const u8> {
        (**self).heap_addr()
    }
}

impl<T: Trackable> Trackable for RefCell<T> {
    fn heap_addr(&self) -> Option<*const u8> {
        self.try_borrow().ok()?.heap_addr()
    }
}

/// What `track!` calls. Returns whether a name record was written.
#[doc(hidden)]
pub fn name<T: Trackable + ?Sized>(value: &T, var: &str, file: &str, line: u32) -> bool {
    let Some(addr) = value.heap_addr() else {
        return false;
    };
    crate::record::meta(&Record::Name(Name {
        addr: addr as usize as u64,
        var,
        type_name: std::any::type_name::<T>(),
        file,
        line,
    }))
}

/// Names the heap block behind a variable in the trace, with its type and
/// source location: `config_cache: HashMap<String, Vec<u8>> at src/main.rs:42`.
///
/// Works for `Vec`, `String`, `Box`, `Rc`, `Arc`, `HashMap`, `BTreeMap`,
/// `VecDeque` and any type implementing [`Trackable`]. Evaluates to `true`
/// when a name was recorded (`false` when not recording or the value owns no
/// block). Name it after it is filled: a `Vec` that grows moves to a new block.
///
/// ```
/// let cache: Vec<u32> = (0..100).collect();
/// memscope_std::track!(cache);
/// ```
#[macro_export]
macro_rules! track {
    ($var:expr) => {
        $crate::track::name(&$var, stringify!($var), file!(), line!())
    };
}

/// Attributes the current thread's allocations to a named phase until the
/// end of the enclosing block. Scopes nest.
///
/// ```
/// fn parse() {
///     memscope_std::track_scope!("parse");
///     let words: Vec<String> = "a b c".split(' ').map(String::from).collect();
///     # drop(words);
/// }
/// # parse();
/// ```
#[macro_export]
macro_rules! track_scope {
    ($name:expr) => {
        let _memscope_scope = $crate::track::Scope::enter($name);
    };
}

/// A phase of the current thread, open until dropped. See [`track_scope!`].
#[must_use = "the scope ends when this is dropped"]
pub struct Scope {
    recorded: bool,
    /// Scopes belong to their thread.
    _not_send: std::marker::PhantomData<*const ()>,
}

impl Scope {
    /// Opens a scope named `name` on the current thread.
    pub fn enter(name: &str) -> Scope {
        Scope {
            recorded: crate::record::meta(&Record::ScopeEnter { name }),
            _not_send: std::marker::PhantomData,
        }
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        if self.recorded {
            crate::record::meta(&Record::ScopeExit);
        }
    }
}
