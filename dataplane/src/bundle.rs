//! The SAs one policy applies, in the order the RouterOS manual gives for `ah,esp`: ESP first,
//! then AH over the result; inbound in reverse. In tunnel mode only the ESP SA tunnels and AH
//! runs in transport mode over the new outer header (with `ah` alone, AH tunnels itself).

use crate::buf::{Burst, PacketBuf};
use crate::crypto::Engine;
use crate::sa::Sa;
use crate::stats::Stats;
use crate::{ah, esp};

/// One direction of a policy's SAs: `esp`, `ah`, or both. ESP comes first in memory (`repr(C)`):
/// the front of a bundle is the hot part of its first SA, what the worker prefetches.
#[repr(C)]
pub struct Bundle<S> {
    /// The ESP SA, applied first outbound.
    pub esp: Option<Sa<S>>,
    /// The AH SA, applied last outbound.
    pub ah: Option<Sa<S>>,
}

impl<S> Bundle<S> {
    /// Returns true when every SA of the bundle may process packets.
    pub fn is_usable(&self) -> bool {
        self.esp.as_ref().is_none_or(Sa::is_usable)
            && self.ah.as_ref().is_none_or(Sa::is_usable)
            && (self.esp.is_some() || self.ah.is_some())
    }

    /// Returns the classification key of every packet the bundle seals: its last SA's.
    pub fn outer_key(&self) -> Option<crate::classify::Key> {
        self.ah.as_ref().or(self.esp.as_ref()).map(Sa::outer_key)
    }

    /// Returns the SAs of the bundle, ESP first.
    pub fn sas(&self) -> impl Iterator<Item = &Sa<S>> {
        self.esp.iter().chain(self.ah.iter())
    }

    /// Returns the SAs of the bundle, ESP first.
    pub fn sas_mut(&mut self) -> impl Iterator<Item = &mut Sa<S>> {
        self.esp.iter_mut().chain(self.ah.iter_mut())
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
        if let Some(sa) = self.ah.as_mut() {
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
        if let Some(sa) = self.ah.as_mut() {
            ah::open(sa, engine, burst, stats);
        }
        if let Some(sa) = self.esp.as_mut() {
            esp::open(sa, engine, burst, stats);
        }
    }
}
