//! Linux `jhash` (Bob Jenkins' lookup3, as `include/linux/jhash.h` implements it) and the key
//! layout nftables builds for `jhash <concatenation> mod N seed S`, so a lab that balances with
//! nft is predicted bit for bit.
//!
//! Recipe (shared/research/semantics.md §B3, kernel-verified):
//! 1. every field of a concatenation sits in its own 32-bit register slot, bytes in network order,
//!    the rest of the slot zero-filled (a port is 2 bytes then `00 00`); a lone field is not
//!    padded;
//! 2. `h = jhash(key, len, seed)` — the byte-oriented variant, tail read little-endian;
//! 3. `bucket = (h · N) >> 32` (`reciprocal_scale`), never `h mod N`.

use std::net::IpAddr;

/// Largest key nft can hash here: IPv6 saddr . sport . daddr . dport . l4proto = 16+4+16+4+4.
pub const MAX_KEY_LEN: usize = 44;

const JHASH_INITVAL: u32 = 0xdead_beef;

#[inline(always)]
fn mix(a: &mut u32, b: &mut u32, c: &mut u32) {
    *a = a.wrapping_sub(*c);
    *a ^= c.rotate_left(4);
    *c = c.wrapping_add(*b);
    *b = b.wrapping_sub(*a);
    *b ^= a.rotate_left(6);
    *a = a.wrapping_add(*c);
    *c = c.wrapping_sub(*b);
    *c ^= b.rotate_left(8);
    *b = b.wrapping_add(*a);
    *a = a.wrapping_sub(*c);
    *a ^= c.rotate_left(16);
    *c = c.wrapping_add(*b);
    *b = b.wrapping_sub(*a);
    *b ^= a.rotate_left(19);
    *a = a.wrapping_add(*c);
    *c = c.wrapping_sub(*b);
    *c ^= b.rotate_left(4);
    *b = b.wrapping_add(*a);
}

#[inline(always)]
fn final_mix(a: &mut u32, b: &mut u32, c: &mut u32) {
    *c ^= *b;
    *c = c.wrapping_sub(b.rotate_left(14));
    *a ^= *c;
    *a = a.wrapping_sub(c.rotate_left(11));
    *b ^= *a;
    *b = b.wrapping_sub(a.rotate_left(25));
    *c ^= *b;
    *c = c.wrapping_sub(b.rotate_left(16));
    *a ^= *c;
    *a = a.wrapping_sub(c.rotate_left(4));
    *b ^= *a;
    *b = b.wrapping_sub(a.rotate_left(14));
    *c ^= *b;
    *c = c.wrapping_sub(b.rotate_left(24));
}

#[inline(always)]
fn le32(bytes: &[u8]) -> u32 {
    u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
}

/// `jhash(key, length, initval)` from Linux `include/linux/jhash.h`, byte-oriented.
///
/// Full 12-byte blocks are read as little-endian words: that is what the kernel does on the
/// little-endian hosts (x86_64, arm64) whose behaviour we reproduce, on any host we run on.
pub fn jhash(key: &[u8], initval: u32) -> u32 {
    // The kernel takes `u32 length`; keys here are at most a few dozen bytes, so truncation of
    // the length into u32 only matters for >4 GiB inputs, where it matches the kernel too.
    let len = key.len() as u32;
    let start = JHASH_INITVAL.wrapping_add(len).wrapping_add(initval);
    let (mut a, mut b, mut c) = (start, start, start);
    let mut rest = key;
    // Strictly greater: a final full block goes through the tail code with `final`, as in C.
    while rest.len() > 12 {
        a = a.wrapping_add(le32(&rest[0..4]));
        b = b.wrapping_add(le32(&rest[4..8]));
        c = c.wrapping_add(le32(&rest[8..12]));
        mix(&mut a, &mut b, &mut c);
        rest = &rest[12..];
    }
    if rest.is_empty() {
        return c;
    }
    let mut tail = [0u8; 12];
    tail[..rest.len()].copy_from_slice(rest);
    a = a.wrapping_add(le32(&tail[0..4]));
    b = b.wrapping_add(le32(&tail[4..8]));
    c = c.wrapping_add(le32(&tail[8..12]));
    final_mix(&mut a, &mut b, &mut c);
    c
}

/// `reciprocal_scale(h, n)`: maps a 32-bit hash into `[0, n)` by taking the high half of
/// `h · n`. This is how nft's `jhash … mod N` reduces (not `h % N`). `n == 0` yields 0.
#[inline]
pub fn reciprocal_scale(h: u32, n: u32) -> u32 {
    ((u64::from(h) * u64::from(n)) >> 32) as u32
}

/// A key laid out exactly as nft concatenates fields into registers. Fixed-size, no allocation.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct NftKey {
    bytes: [u8; MAX_KEY_LEN],
    len: usize,
    fields: u8,
}

impl Default for NftKey {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for NftKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NftKey(")?;
        for b in self.as_bytes() {
            write!(f, "{b:02x}")?;
        }
        write!(f, ")")
    }
}

impl NftKey {
    pub const fn new() -> Self {
        Self {
            bytes: [0; MAX_KEY_LEN],
            len: 0,
            fields: 0,
        }
    }

    /// Append one field of a concatenation. `raw` is the field in network byte order (as in the
    /// packet). It is zero-padded to a multiple of 4 bytes, as nft's registers are. Fields that
    /// would overflow [`MAX_KEY_LEN`] are refused (returns `false`) rather than truncated.
    pub fn push(&mut self, raw: &[u8]) -> bool {
        let padded = raw.len().div_ceil(4) * 4;
        if self.len + padded > MAX_KEY_LEN {
            return false;
        }
        self.bytes[self.len..self.len + raw.len()].copy_from_slice(raw);
        // Zero-fill explicitly: a key may be reused after `clear`.
        self.bytes[self.len + raw.len()..self.len + padded].fill(0);
        self.len += padded;
        self.fields += 1;
        true
    }

    pub fn push_ip(&mut self, ip: IpAddr) -> bool {
        match ip {
            IpAddr::V4(v4) => self.push(&v4.octets()),
            IpAddr::V6(v6) => self.push(&v6.octets()),
        }
    }

    pub fn push_port(&mut self, port: u16) -> bool {
        self.push(&port.to_be_bytes())
    }

    /// `meta l4proto`: one byte, in a zeroed 4-byte slot.
    pub fn push_l4proto(&mut self, proto: u8) -> bool {
        self.push(&[proto])
    }

    pub fn clear(&mut self) {
        self.len = 0;
        self.fields = 0;
    }

    /// The bytes nft hashes. A single field is NOT padded (nft pads only inside a
    /// concatenation): `jhash tcp dport` hashes 2 bytes. We stored it padded, so trim it back.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }

    fn hashed_len(&self, single_field_len: Option<usize>) -> usize {
        match (self.fields, single_field_len) {
            (1, Some(l)) => l,
            _ => self.len,
        }
    }
}

/// Build a key from a list of raw fields with nft's exact rules (including the unpadded single
/// field) and return the bytes that get hashed. Mostly for tests and tools; the ALB model uses
/// [`NftKey`] directly.
pub fn nft_key_bytes(fields: &[&[u8]]) -> Vec<u8> {
    let mut key = NftKey::new();
    for f in fields {
        if !key.push(f) {
            break;
        }
    }
    let single = if fields.len() == 1 {
        Some(fields[0].len().min(MAX_KEY_LEN))
    } else {
        None
    };
    key.as_bytes()[..key.hashed_len(single)].to_vec()
}

/// nft `jhash <fields> mod n seed seed offset 0` for a concatenation (two or more fields) or a
/// 4-byte-multiple single field.
#[inline]
pub fn nft_jhash_bucket(key: &NftKey, n: u32, seed: u32) -> u32 {
    reciprocal_scale(jhash(key.as_bytes(), seed), n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// semantics.md §B3 kernel-verified table, row by row.
    #[test]
    fn semantics_b3_vectors() {
        // (key hex, seed, h)
        let rows: &[(&str, u32, u32)] = &[
            ("7f0000019c4000007f0000021f900000", 0x1234_5678, 0x56b3_ebb0),
            ("7f0000019c4100007f0000021f900000", 0x1234_5678, 0x6b9d_0bf4),
            ("7f0000019c4200007f0000021f900000", 0x1234_5678, 0x60ca_4379),
            ("7f000001d90300007f0000021f900000", 0x1234_5678, 0xa910_8e21),
            ("7f0000019c4000007f0000021f910000", 0x1234_5678, 0xc772_fb5e),
            ("7f0000019c4100007f0000021f910000", 0x1234_5678, 0x86ac_1a25),
            ("7f0000019c4200007f0000021f910000", 0x1234_5678, 0x9ad5_3391),
            ("7f000001d90300007f0000021f910000", 0x1234_5678, 0x2802_c8e5),
            ("1f92", 0, 0xe5eb_611b),
            ("7f000009", 0xdead_beef, 0xca55_410c),
        ];
        for (k, seed, h) in rows {
            assert_eq!(jhash(&hex(k), *seed), *h, "key {k} seed {seed:#x}");
        }
        // The kernel results printed by `ct mark set jhash … mod 4294967295` are h − 1.
        assert_eq!(reciprocal_scale(0x56b3_ebb0, u32::MAX), 1_454_631_855);
        assert_eq!(reciprocal_scale(0x6b9d_0bf4, u32::MAX), 1_805_454_323);
        assert_eq!(reciprocal_scale(0x60ca_4379, u32::MAX), 1_623_868_280);
        assert_eq!(reciprocal_scale(0xa910_8e21, u32::MAX), 2_836_434_464);
        assert_eq!(reciprocal_scale(0xe5eb_611b, u32::MAX), 3_857_408_282);
        assert_eq!(reciprocal_scale(0xca55_410c, u32::MAX), 3_394_584_843);
        // `mod 7 seed 0x12345678 offset 100`: 105 / 103 / 104 / 101 — not h % 7 + 100.
        let got: Vec<u32> = [0xc772_fb5e_u32, 0x86ac_1a25, 0x9ad5_3391, 0x2802_c8e5]
            .iter()
            .map(|h| reciprocal_scale(*h, 7) + 100)
            .collect();
        assert_eq!(got, [105, 103, 104, 101]);
        // The padded 4-byte `1f920000` key differs from the 2-byte single field.
        assert_eq!(
            reciprocal_scale(jhash(&hex("1f920000"), 0), u32::MAX),
            1_946_769_336
        );
    }

    #[test]
    fn key_layout_matches_nft_registers() {
        let mut k = NftKey::new();
        assert!(k.push_ip("127.0.0.1".parse().unwrap()));
        assert!(k.push_port(40000));
        assert!(k.push_ip("127.0.0.2".parse().unwrap()));
        assert!(k.push_port(8080));
        assert_eq!(
            k.as_bytes(),
            hex("7f0000019c4000007f0000021f900000").as_slice()
        );
        assert_eq!(nft_jhash_bucket(&k, u32::MAX, 0x1234_5678), 1_454_631_855);

        let mut k = NftKey::new();
        k.push_ip("10.0.0.1".parse().unwrap());
        k.push_ip("10.0.0.2".parse().unwrap());
        k.push_l4proto(6);
        assert_eq!(k.as_bytes(), hex("0a0000010a00000206000000").as_slice());

        // Single field: not padded.
        assert_eq!(nft_key_bytes(&[&8082u16.to_be_bytes()]), hex("1f92"));
        assert_eq!(
            nft_key_bytes(&[&[10, 0, 0, 1], &[0, 80]]),
            hex("0a00000100500000")
        );
    }

    #[test]
    fn ipv6_five_field_key_fits_and_overflow_is_refused() {
        let mut k = NftKey::new();
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        assert!(k.push_ip(v6) && k.push_port(1) && k.push_ip(v6) && k.push_port(2));
        assert!(k.push_l4proto(6));
        assert_eq!(k.as_bytes().len(), 44);
        assert!(!k.push_port(3), "a field past MAX_KEY_LEN must be refused");
        assert_eq!(k.as_bytes().len(), 44);
    }

    #[test]
    fn lookup3_edge_lengths() {
        // len 0 returns c untouched: 0xdeadbeef + 0 + seed.
        assert_eq!(jhash(&[], 0), 0xdead_beef);
        assert_eq!(jhash(&[], 1), 0xdead_bef0);
        // Bob Jenkins' own lookup3.c self-test (driver5): hashlittle == Linux jhash.
        assert_eq!(jhash(b"Four score and seven years ago", 0), 0x1777_0551);
        assert_eq!(jhash(b"Four score and seven years ago", 1), 0xcd62_8161);
    }

    #[test]
    fn reciprocal_scale_bounds() {
        for n in [1u32, 2, 3, 7, 1000, u32::MAX] {
            assert!(reciprocal_scale(u32::MAX, n) < n);
            assert_eq!(reciprocal_scale(0, n), 0);
        }
        assert_eq!(reciprocal_scale(12345, 0), 0);
    }
}
