//! Per-core counters: every packet a stage refuses is counted under a named [`DropReason`].
//! Counters are plain integers owned by one worker; they are merged only when read.

macro_rules! drop_reasons {
    ($($(#[doc = $doc:literal])* $name:ident = $label:literal,)*) => {
        /// Why a packet was dropped. Every drop on the per-packet path names one.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum DropReason {
            $($(#[doc = $doc])* $name,)*
        }

        impl DropReason {
            /// Every reason, in counter order.
            pub const ALL: &'static [DropReason] = &[$(DropReason::$name,)*];
            /// Number of reasons.
            pub const COUNT: usize = Self::ALL.len();

            /// Returns the reason's name as counters print it.
            pub fn label(self) -> &'static str {
                match self {
                    $(DropReason::$name => $label,)*
                }
            }
        }
    };
}

drop_reasons! {
    /// Shorter than its own headers say.
    Truncated = "truncated",
    /// Not an IPv4 packet.
    NotIpv4 = "not-ipv4",
    /// IPv4 header with a bad IHL or total length.
    BadIpHeader = "bad-ip-header",
    /// An ESP/AH fragment: the fast path does not reassemble.
    IpFragment = "ip-fragment",
    /// No security association for (dst, protocol, SPI).
    UnknownSpi = "unknown-spi",
    /// The SPI is not the one of the SA the packet was handed to.
    SpiMismatch = "spi-mismatch",
    /// Sequence number already received (RFC 4303 3.4.3).
    Replayed = "replayed",
    /// Sequence number left of the replay window.
    TooOld = "too-old",
    /// The integrity check value did not verify.
    AuthFailed = "auth-failed",
    /// Ciphertext length not a multiple of the cipher's block size.
    BadCipherLen = "bad-cipher-length",
    /// Padding bytes other than 1, 2, 3... (RFC 4303 2.4).
    BadPadding = "bad-padding",
    /// Next header not what the SA's mode carries.
    BadNextHeader = "bad-next-header",
    /// AH payload length disagrees with the SA's ICV length.
    BadAhLength = "bad-ah-length",
    /// Transport mode applies only between sa-src and sa-dst.
    TransportAddrMismatch = "transport-address-mismatch",
    /// No headroom left for the new headers.
    NoHeadroom = "no-headroom",
    /// No tailroom left for the trailer and ICV.
    NoTailroom = "no-tailroom",
    /// The encapsulated packet would exceed the IPv4 maximum.
    TooBig = "too-big",
    /// The SA used up its 32-bit sequence space and stopped (RFC 4303 3.3.3).
    SeqExhausted = "sequence-exhausted",
    /// The SA reached its hard lifetime.
    SaExpired = "sa-expired",
    /// The crypto engine refused the job.
    CryptoFailed = "crypto-failed",
    /// The first matching policy says `action=drop`.
    PolicyDrop = "policy-drop",
    /// The policy says encrypt at `level=require` and has no usable SA yet.
    NoSa = "no-sa",
    /// Arrived in clear though the reversed policy it matches has a valid SA (incoming policy check).
    IncomingPolicy = "incoming-policy",
    /// After decryption, the packet does not match the policy its SA belongs to.
    InnerPolicyMismatch = "inner-policy-mismatch",
    /// A unicast frame for another host's Ethernet address.
    OtherHost = "other-host",
    /// An Ethernet frame that is neither IPv4 nor ARP.
    UnsupportedEthertype = "unsupported-ethertype",
    /// A malformed ARP packet.
    BadArp = "bad-arp",
    /// IPv4 header checksum mismatch.
    BadChecksum = "bad-checksum",
    /// No route to the destination (an ICMP unreachable is sent where allowed).
    NoRoute = "no-route",
    /// TTL ran out (an ICMP time-exceeded is sent where allowed).
    TtlExceeded = "ttl-exceeded",
    /// Larger than the output MTU with DF set (an ICMP fragmentation-needed is sent).
    FragNeeded = "fragmentation-needed",
    /// No buffer for a fragment.
    NoBuffer = "no-buffer",
    /// The control-plane ring was full.
    PuntRingFull = "punt-ring-full",
    /// The output queue refused the packet.
    TxQueueFull = "tx-queue-full",
    /// Addressed to us, but nothing here or in the control plane takes it.
    LocalUnhandled = "local-unhandled",
    /// A NAT-traversal keepalive (RFC 3948 section 2.3): consumed, nothing to do.
    NatKeepalive = "nat-keepalive",
    /// Inbound IPsec nested deeper than the worker unwraps.
    NestingTooDeep = "nesting-too-deep",
}

/// Counters of one worker (or of one SA's direction).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stats {
    drops: [u64; DropReason::COUNT],
}

impl Default for Stats {
    fn default() -> Self {
        Stats { drops: [0; DropReason::COUNT] }
    }
}

impl Stats {
    /// Counts one packet dropped for `reason`.
    #[inline]
    pub fn drop(&mut self, reason: DropReason) {
        self.drops[reason as usize] += 1;
    }

    /// Counts `n` packets dropped for `reason`.
    pub fn add(&mut self, reason: DropReason, n: u64) {
        self.drops[reason as usize] += n;
    }

    /// Returns how many packets were dropped for `reason`.
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.drops[reason as usize]
    }

    /// Returns the total number of drops.
    pub fn total_dropped(&self) -> u64 {
        self.drops.iter().sum()
    }

    /// Adds another worker's counters to these.
    pub fn merge(&mut self, other: &Stats) {
        for (a, b) in self.drops.iter_mut().zip(other.drops.iter()) {
            *a += *b;
        }
    }

    /// Returns the non-zero drop counters with their labels.
    pub fn nonzero(&self) -> impl Iterator<Item = (DropReason, u64)> + '_ {
        DropReason::ALL.iter().map(|&r| (r, self.dropped(r))).filter(|&(_, n)| n != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_merges() {
        let mut a = Stats::default();
        a.drop(DropReason::AuthFailed);
        a.drop(DropReason::AuthFailed);
        let mut b = Stats::default();
        b.drop(DropReason::Replayed);
        a.merge(&b);
        assert_eq!(a.dropped(DropReason::AuthFailed), 2);
        assert_eq!(a.total_dropped(), 3);
        assert_eq!(a.nonzero().count(), 2);
        let labels: std::collections::HashSet<_> = DropReason::ALL.iter().map(|r| r.label()).collect();
        assert_eq!(labels.len(), DropReason::COUNT, "labels are unique");
    }
}
