//! Stable hashing for rendezvous placement.
//!
//! Placement must not move when the compiler, the process or the machine
//! changes, so std's `DefaultHasher` (randomly keyed, unspecified algorithm) is
//! out: tenants and shards are hashed with SipHash-1-3 under fixed keys.
//! Changing [`KEYS`] or [`mix`] moves every tenant; treat them as a data format.

use siphasher::sip::SipHasher13;

/// SipHash keys: the ASCII of `provisio` and `ning-shd`. Fixed forever.
const KEYS: (u64, u64) = (0x7072_6f76_6973_696f, 0x6e69_6e67_2d73_6864);

/// The stable 64-bit hash of a tenant or shard id.
pub(crate) fn stable_hash(text: &str) -> u64 {
    SipHasher13::new_with_keys(KEYS.0, KEYS.1).hash(text.as_bytes())
}

/// The rendezvous score of one (tenant, shard) pair from their stable hashes.
///
/// Hashing the pair with SipHash per shard would cost ~20 ns per shard; the
/// murmur3 64-bit finalizer over the xor of the two hashes is a bijection with
/// full avalanche, so each shard still sees an independent-looking score for
/// every tenant, at about 1 ns.
#[inline]
pub(crate) fn mix(tenant: u64, shard: u64) -> u64 {
    let mut k = tenant ^ shard;
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^ (k >> 33)
}

/// Weighted rendezvous score: `weight / -ln(u)` with `u` uniform in (0, 1) from
/// the hash, so a shard wins a share of tenants proportional to its weight.
#[inline]
pub(crate) fn weighted(score: u64, weight: u32) -> f64 {
    // The top 52 bits as a float in [0, 1), shifted by half a step into (0, 1):
    // ln(0) and ln(1) would make every weight score the same. 52, not 53, bits:
    // 2^53 - 0.5 rounds to 2^53 in an f64, which would give u = 1.
    const STEP: f64 = 1.0 / (1u64 << 52) as f64;
    let u = ((score >> 12) as f64 + 0.5) * STEP;
    f64::from(weight) / -u.ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_stable_across_builds() {
        // Pinned values: if these change, every tenant in every deployment moves.
        assert_eq!(stable_hash("acme"), stable_hash("acme"));
        assert_ne!(stable_hash("acme"), stable_hash("acme2"));
        assert_eq!(stable_hash("acme"), 5_230_818_454_917_501_473);
        assert_eq!(mix(0, 0), 0);
    }

    #[test]
    fn weighted_scores_grow_with_weight_and_stay_finite() {
        for score in [0, 1, u64::MAX / 2, u64::MAX] {
            let low = weighted(score, 1);
            let high = weighted(score, 10);
            assert!(low.is_finite() && high.is_finite() && low > 0.0);
            assert!(high > low);
        }
    }
}
