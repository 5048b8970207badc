//! Structural scanning shared by the framing reader and the member skimmer.
//!
//! Inside arrays and objects only quotes and brackets matter, and most of a GeoJSON file is
//! coordinate arrays: digits, signs, dots, commas and brackets, no quotes. Such text is
//! skipped a block at a time by counting brackets; the byte-by-byte scanner takes over
//! wherever a block holds a quote or a record separator, or closes the value.

/// Bytes that end a run of bracket-only text.
pub(crate) static STRUCTURAL: [bool; 256] = {
    let mut t = [false; 256];
    t[b'"' as usize] = true;
    t[b'{' as usize] = true;
    t[b'}' as usize] = true;
    t[b'[' as usize] = true;
    t[b']' as usize] = true;
    t[RS as usize] = true;
    t
};

/// The record separator of RFC 8142 text sequences.
pub(crate) const RS: u8 = 0x1e;

const BLOCK: usize = 64;

/// Skips whole blocks of `hay` that hold no quote or record separator, where the value being
/// scanned (at `depth`) does not close and nesting cannot pass `max_depth`: only the depth
/// changes there. Returns the bytes skipped (a multiple of the block size) and the new depth.
#[inline]
pub(crate) fn skip_blocks(hay: &[u8], mut depth: usize, max_depth: usize) -> (usize, usize) {
    let mut skipped = 0;
    for block in hay.chunks_exact(BLOCK) {
        let Masks { opens, closes, stops } = masks(block.try_into().expect("a whole block"));
        if stops != 0 || depth + opens.count_ones() as usize > max_depth || closes_value(opens, closes, depth) {
            break;
        }
        depth = depth + opens.count_ones() as usize - closes.count_ones() as usize;
        skipped += BLOCK;
    }
    (skipped, depth)
}

/// Whether the depth reaches zero at one of the closing brackets of a block.
#[inline]
fn closes_value(opens: u64, closes: u64, depth: usize) -> bool {
    // Fewer closing brackets than levels open: it cannot (in coordinates, the usual case).
    if (closes.count_ones() as usize) < depth {
        return false;
    }
    let mut rest = closes;
    while rest != 0 {
        let at = rest.trailing_zeros();
        let before = (1u64 << at) - 1;
        let opened = (opens & before).count_ones() as usize;
        let closed = (closes & before).count_ones() as usize + 1;
        if depth + opened <= closed {
            return true;
        }
        rest &= rest - 1;
    }
    false
}

/// Bit i is set where byte i of the block is an opening bracket, a closing bracket, or a byte
/// that needs the byte scanner (a quote or a record separator).
struct Masks {
    opens: u64,
    closes: u64,
    stops: u64,
}

#[cfg(target_arch = "x86_64")]
#[inline]
fn masks(block: &[u8; BLOCK]) -> Masks {
    use std::arch::x86_64::{__m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8};
    let mut m = Masks { opens: 0, closes: 0, stops: 0 };
    for (k, lane) in block.chunks_exact(16).enumerate() {
        // SAFETY: SSE2 is part of x86_64, and `lane` is 16 readable bytes (the load is unaligned).
        let (opens, closes, stops) = unsafe {
            let v = _mm_loadu_si128(lane.as_ptr().cast::<__m128i>());
            let eq = |c: u8| _mm_cmpeq_epi8(v, _mm_set1_epi8(c as i8));
            (
                _mm_movemask_epi8(_mm_or_si128(eq(b'['), eq(b'{'))),
                _mm_movemask_epi8(_mm_or_si128(eq(b']'), eq(b'}'))),
                _mm_movemask_epi8(_mm_or_si128(eq(b'"'), eq(RS))),
            )
        };
        let shift = |bits: i32| u64::from(bits as u16) << (16 * k);
        m.opens |= shift(opens);
        m.closes |= shift(closes);
        m.stops |= shift(stops);
    }
    m
}

#[cfg(not(target_arch = "x86_64"))]
fn masks(block: &[u8; BLOCK]) -> Masks {
    let mut m = Masks { opens: 0, closes: 0, stops: 0 };
    for (i, &c) in block.iter().enumerate() {
        m.opens |= u64::from(c == b'[' || c == b'{') << i;
        m.closes |= u64::from(c == b']' || c == b'}') << i;
        m.stops |= u64::from(c == b'"' || c == RS) << i;
    }
    m
}

/// Index of the next structural byte in `hay` (`hay.len()` if there is none), given the
/// current nesting depth (≥ 1), and the depth at that point. `after` is the byte before
/// `hay`: after a bracket, in arrays, bracket-only blocks are likely and skipped in bulk;
/// elsewhere trying costs more than it saves.
#[inline]
pub(crate) fn next_structural(hay: &[u8], after: u8, depth: usize, max_depth: usize) -> (usize, usize) {
    let (skipped, depth) = if matches!(after, b'[' | b']') { skip_blocks(hay, depth, max_depth) } else { (0, depth) };
    let i = hay[skipped..].iter().position(|&c| STRUCTURAL[c as usize]).unwrap_or(hay.len() - skipped);
    (skipped + i, depth)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scalar_depth(hay: &[u8], mut depth: usize) -> usize {
        for &c in hay {
            match c {
                b'[' | b'{' => depth += 1,
                b']' | b'}' => depth -= 1,
                _ => {}
            }
        }
        depth
    }

    #[test]
    fn skips_only_blocks_that_cannot_close_or_hold_strings() {
        let coords = b"[[1.5,2.25],[3.125,-4.0],[5e3,6E-2],[7,8],[9,10],[11,12],[13,14]],".repeat(8);
        let (skipped, depth) = skip_blocks(&coords, 3, 64);
        assert!(skipped >= 256, "bracket-only text is skipped in blocks: {skipped}");
        assert_eq!(skipped % BLOCK, 0);
        assert_eq!(depth, scalar_depth(&coords[..skipped], 3));

        // A block where the value closes is left to the byte scanner.
        assert_eq!(skip_blocks(&[b"0]".as_slice(), &coords].concat(), 1, 64), (0, 1));
        assert_eq!(skip_blocks(b"[[1,2],[3,4]]]]]]".repeat(8).as_slice(), 4, 64).0, 0);
        // A quote stops the bulk skip at its block.
        let mut quoted = coords.clone();
        quoted[70] = b'"';
        assert_eq!(skip_blocks(&quoted, 3, 64).0, 64);
        // Nesting that could pass the limit is left to the byte scanner, which reports it.
        assert_eq!(skip_blocks(&b"[".repeat(128), 1, 64).0, 0);
    }

    #[test]
    fn next_structural_matches_a_byte_scan() {
        let text = b"[[1,2],[3,4],[5,6],[7,8],[9,10],[11,12],[13,14],[15,16],[17,18]]],\"key\":1}".repeat(3);
        let mut pos = 0;
        let mut depth = 3;
        loop {
            let (i, d) = next_structural(&text[pos..], text[pos.max(1) - 1], depth, 64);
            if pos + i == text.len() {
                assert_eq!(d, scalar_depth(&text[pos..], depth));
                break;
            }
            let expected = text[pos..].iter().position(|&c| STRUCTURAL[c as usize]).unwrap();
            assert!(i >= expected);
            assert_eq!(d, scalar_depth(&text[pos..pos + i], depth));
            depth = match text[pos + i] {
                b'[' | b'{' => d + 1,
                b']' | b'}' => d.saturating_sub(1).max(1),
                _ => d,
            };
            pos += i + 1;
        }
    }
}
