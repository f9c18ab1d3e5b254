//! The SAs one policy applies, in the order the RouterOS manual gives for `ah,esp`: ESP first,
//! then AH over the result; inbound in reverse. In tunnel mode only the ESP SA tunnels and AH
//! runs in transport mode over the new outer header (with `ah` alone, AH tunnels itself).

use crate::buf::{Burst, PacketBuf};
use crate::crypto::Engine;
use crate::sa::Sa;
use crate::stats::Stats;
use crate::{ah, esp};

/// One direction of a policy's SAs: `esp`, `ah`, or both.
///
/// The front of a bundle is what the worker prefetches for every packet: the AH pointer, then
/// the hot part of the ESP SA (`repr(C)`, [`Bundle::HOT_BYTES`]). AH lives on the heap so that
/// telling whether there is one reads the front: stored inline after ESP, its tag sat some 800
/// bytes in, and asking `is_usable` missed the cache on every packet with 10,000 SAs. A bundle
/// starts a cache line, so that its front takes as few lines as its size needs.
#[repr(C, align(64))]
pub struct Bundle<S> {
    /// The AH SA, applied last outbound.
    pub ah: Option<Box<Sa<S>>>,
    /// The ESP SA, applied first outbound.
    pub esp: Option<Sa<S>>,
}

impl<S> Bundle<S> {
    /// The bytes at the start of a bundle that every packet reads: the AH pointer and the ESP
    /// SA's per-packet fields.
    pub const HOT_BYTES: usize = std::mem::offset_of!(Bundle<S>, esp) + Sa::<S>::HOT_BYTES;

    /// Returns a bundle of `esp`, `ah`, or both.
    pub fn new(esp: Option<Sa<S>>, ah: Option<Sa<S>>) -> Self {
        Bundle { ah: ah.map(Box::new), esp }
    }

    /// Returns true when every SA of the bundle may process packets.
    pub fn is_usable(&self) -> bool {
        self.esp.as_ref().is_none_or(Sa::is_usable)
            && self.ah.as_deref().is_none_or(Sa::is_usable)
            && (self.esp.is_some() || self.ah.is_some())
    }

    /// Returns the classification key of every packet the bundle seals: its last SA's.
    pub fn outer_key(&self) -> Option<crate::classify::Key> {
        self.ah.as_deref().or(self.esp.as_ref()).map(Sa::outer_key)
    }

    /// Returns the SAs of the bundle, ESP first.
    pub fn sas(&self) -> impl Iterator<Item = &Sa<S>> {
        self.esp.iter().chain(self.ah.as_deref())
    }

    /// Returns the SAs of the bundle, ESP first.
    pub fn sas_mut(&mut self) -> impl Iterator<Item = &mut Sa<S>> {
        self.esp.iter_mut().chain(self.ah.as_deref_mut())
    }

    /// Seals a burst: ESP, then AH.
    pub fn seal<E: Engine<Session = S>, B: PacketBuf>(
        &mut self,
        engine: &mut E,
        burst: &mut Burst<B>,
        stats: &mut Stats,
    ) {
        if let Some(sa) = self.esp.as_mut() {
            esp::seal(sa, engine, burst, stats);
        }
        if let Some(sa) = self.ah.as_deref_mut() {
            ah::seal(sa, engine, burst, stats);
        }
    }

    /// Opens a burst: AH, then ESP.
    pub fn open<E: Engine<Session = S>, B: PacketBuf>(
        &mut self,
        engine: &mut E,
        burst: &mut Burst<B>,
        stats: &mut Stats,
    ) {
        if let Some(sa) = self.ah.as_deref_mut() {
            ah::open(sa, engine, burst, stats);
        }
        if let Some(sa) = self.esp.as_mut() {
            esp::open(sa, engine, burst, stats);
        }
    }
}
