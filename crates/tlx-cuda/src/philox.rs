//! Philox4x32-10 on the host: the counter-based generator behind `kernels/dropout.cu`, so a
//! CPU path (or a test) can reproduce a GPU dropout mask bit for bit.
//!
//! Element `i` of a stream `(seed, offset)` uses word `i % 4` of
//! `philox(counter = [i/4 low, i/4 high, offset low, offset high], key = [seed low, seed high])`
//! and its uniform is `(word >> 8)·2⁻²⁴`.

const M0: u32 = 0xD251_1F53;
const M1: u32 = 0xCD9E_8D57;
const W0: u32 = 0x9E37_79B9;
const W1: u32 = 0xBB67_AE85;

/// Ten Philox4x32 rounds of `ctr` under `key`.
pub fn philox4x32_10(mut ctr: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    let (mut k0, mut k1) = (key[0], key[1]);
    for _ in 0..10 {
        let p0 = u64::from(M0) * u64::from(ctr[0]);
        let p1 = u64::from(M1) * u64::from(ctr[2]);
        let (hi0, lo0) = ((p0 >> 32) as u32, p0 as u32);
        let (hi1, lo1) = ((p1 >> 32) as u32, p1 as u32);
        ctr = [hi1 ^ ctr[1] ^ k0, lo1, hi0 ^ ctr[3] ^ k1, lo0];
        k0 = k0.wrapping_add(W0);
        k1 = k1.wrapping_add(W1);
    }
    ctr
}

/// The uniform in `[0, 1)` of element `i` of the stream `(seed, offset)`.
pub fn uniform(seed: u64, offset: u64, i: u64) -> f32 {
    let block = i >> 2;
    let r = philox4x32_10(
        [block as u32, (block >> 32) as u32, offset as u32, (offset >> 32) as u32],
        [seed as u32, (seed >> 32) as u32],
    );
    (r[(i & 3) as usize] >> 8) as f32 * (1.0 / 16_777_216.0)
}

/// Whether dropout at `rate` keeps element `i` of the stream `(seed, offset)`.
pub fn keep(seed: u64, offset: u64, i: u64, rate: f32) -> bool {
    uniform(seed, offset, i) >= rate
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_answer() {
        // Random123's known-answer test for philox4x32_10 with all-zero counter and key.
        assert_eq!(philox4x32_10([0; 4], [0; 2]), [0x6627_e8d5, 0xe169_c58d, 0xbc57_ac4c, 0x9b00_dbd8]);
        // And with all-ones.
        assert_eq!(
            philox4x32_10([u32::MAX; 4], [u32::MAX; 2]),
            [0x408f_276d, 0x41c8_3b0e, 0xa20b_c7c6, 0x6d54_51fd]
        );
    }

    #[test]
    fn uniforms_are_spread() {
        let n = 40_000u64;
        let mean = (0..n).map(|i| uniform(7, 3, i) as f64).sum::<f64>() / n as f64;
        assert!((mean - 0.5).abs() < 0.01, "{mean}");
        let kept = (0..n).filter(|&i| keep(7, 3, i, 0.3)).count() as f64 / n as f64;
        assert!((kept - 0.7).abs() < 0.01, "{kept}");
    }
}
