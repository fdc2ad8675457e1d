//! The tile transforms of the Winograd convolution, written out for F(2×2, 3×3) and
//! F(4×4, 3×3) on lanes of `L` channels (one vector register's worth, or 1 for the channels
//! left over), so that a tile's α×α values pass through registers (and the stack) instead
//! of through memory once per coefficient:
//! - input: `V = Bᵀ·d·B`, first down every column of the α×α tile `d`, then along every row;
//! - output: `y = Aᵀ·M·A`, the same way with the m×α matrix Aᵀ.
//!
//! The formulas are the rows of Bᵀ and Aᵀ (`winograd::F2`, `winograd::F4`) with common
//! terms shared; the tests check them against the tables (`winograd_tests.rs`).

// The row passes read element i of every column (a transpose): an index loop says that best.
#![allow(clippy::needless_range_loop)]

/// `L` channels of one value.
pub(super) type Lanes<const L: usize> = [f32; L];

#[inline(always)]
fn add<const L: usize>(mut a: Lanes<L>, b: Lanes<L>) -> Lanes<L> {
    for (a, b) in a.iter_mut().zip(b) {
        *a += b;
    }
    a
}

#[inline(always)]
fn sub<const L: usize>(mut a: Lanes<L>, b: Lanes<L>) -> Lanes<L> {
    for (a, b) in a.iter_mut().zip(b) {
        *a -= b;
    }
    a
}

/// `k·a + b` (one rounding with FMA). Plain loops, not `array::from_fn`, whose closures may
/// be compiled out of line, without the caller's target features.
#[inline(always)]
fn madd<const L: usize, const FMA: bool>(k: f32, a: Lanes<L>, mut b: Lanes<L>) -> Lanes<L> {
    for (b, a) in b.iter_mut().zip(a) {
        *b = if FMA { k.mul_add(a, *b) } else { k * a + *b };
    }
    b
}

/// Bᵀ·d for one column `d` of a 6×6 tile (F(4×4, 3×3)).
#[inline(always)]
fn bt4<const L: usize, const FMA: bool>(d: &[Lanes<L>; 6]) -> [Lanes<L>; 6] {
    let (d13, d42) = (sub(d[1], d[3]), sub(d[4], d[2]));
    [
        madd::<L, FMA>(4.0, d[0], madd::<L, FMA>(-5.0, d[2], d[4])),
        madd::<L, FMA>(-4.0, add(d[1], d[2]), add(d[3], d[4])),
        madd::<L, FMA>(4.0, sub(d[1], d[2]), sub(d[4], d[3])),
        madd::<L, FMA>(-2.0, d13, d42),
        madd::<L, FMA>(2.0, d13, d42),
        madd::<L, FMA>(4.0, d[1], madd::<L, FMA>(-5.0, d[3], d[5])),
    ]
}

/// Aᵀ·m for one column `m` of a 6×6 product (F(4×4, 3×3)).
#[inline(always)]
fn at4<const L: usize, const FMA: bool>(m: &[Lanes<L>; 6]) -> [Lanes<L>; 4] {
    let (s12, d12, s34, d34) = (add(m[1], m[2]), sub(m[1], m[2]), add(m[3], m[4]), sub(m[3], m[4]));
    [
        add(add(m[0], s12), s34),
        madd::<L, FMA>(2.0, d34, d12),
        madd::<L, FMA>(4.0, s34, s12),
        add(madd::<L, FMA>(8.0, d34, d12), m[5]),
    ]
}

/// Bᵀ·d for one column of a 4×4 tile (F(2×2, 3×3)).
#[inline(always)]
fn bt2<const L: usize>(d: &[Lanes<L>; 4]) -> [Lanes<L>; 4] {
    [sub(d[0], d[2]), add(d[1], d[2]), sub(d[2], d[1]), sub(d[1], d[3])]
}

/// Aᵀ·m for one column of a 4×4 product (F(2×2, 3×3)).
#[inline(always)]
fn at2<const L: usize>(m: &[Lanes<L>; 4]) -> [Lanes<L>; 2] {
    [add(add(m[0], m[1]), m[2]), sub(sub(m[1], m[2]), m[3])]
}

/// Input transform of one F(4×4) tile: `get(y, x)` reads `d[y][x]`, `put(ξ, v)` receives
/// `V[ξ]` for ξ = i·6 + j.
#[inline(always)]
pub(super) fn input4<const L: usize, const FMA: bool>(
    get: impl Fn(usize, usize) -> Lanes<L>,
    mut put: impl FnMut(usize, Lanes<L>),
) {
    // c[x] = Bᵀ·d[·][x], built from values (a zeroed array would cost a memset call; a
    // closure may be compiled out of line, without the caller's target features).
    macro_rules! col {
        ($x:expr) => {
            bt4::<L, FMA>(&[get(0, $x), get(1, $x), get(2, $x), get(3, $x), get(4, $x), get(5, $x)])
        };
    }
    let c = [col!(0), col!(1), col!(2), col!(3), col!(4), col!(5)];
    for i in 0..6 {
        let row = bt4::<L, FMA>(&[c[0][i], c[1][i], c[2][i], c[3][i], c[4][i], c[5][i]]);
        for (j, v) in row.into_iter().enumerate() {
            put(i * 6 + j, v);
        }
    }
}

/// Output transform of one F(4×4) tile: `get(ξ)` reads `M[ξ]`, `put(i, j, y)` receives the
/// output at (i, j) of the 4×4 tile.
#[inline(always)]
pub(super) fn output4<const L: usize, const FMA: bool>(
    get: impl Fn(usize) -> Lanes<L>,
    mut put: impl FnMut(usize, usize, Lanes<L>),
) {
    macro_rules! col {
        ($x:expr) => {
            at4::<L, FMA>(&[get($x), get(6 + $x), get(12 + $x), get(18 + $x), get(24 + $x), get(30 + $x)])
        };
    }
    let c = [col!(0), col!(1), col!(2), col!(3), col!(4), col!(5)];
    for i in 0..4 {
        let row = at4::<L, FMA>(&[c[0][i], c[1][i], c[2][i], c[3][i], c[4][i], c[5][i]]);
        for (j, v) in row.into_iter().enumerate() {
            put(i, j, v);
        }
    }
}

/// [`input4`] for F(2×2): 4×4 tiles, ξ = i·4 + j.
#[inline(always)]
pub(super) fn input2<const L: usize>(
    get: impl Fn(usize, usize) -> Lanes<L>,
    mut put: impl FnMut(usize, Lanes<L>),
) {
    macro_rules! col {
        ($x:expr) => {
            bt2::<L>(&[get(0, $x), get(1, $x), get(2, $x), get(3, $x)])
        };
    }
    let c = [col!(0), col!(1), col!(2), col!(3)];
    for i in 0..4 {
        for (j, v) in bt2::<L>(&[c[0][i], c[1][i], c[2][i], c[3][i]]).into_iter().enumerate() {
            put(i * 4 + j, v);
        }
    }
}

/// [`output4`] for F(2×2): 2×2 outputs.
#[inline(always)]
pub(super) fn output2<const L: usize>(
    get: impl Fn(usize) -> Lanes<L>,
    mut put: impl FnMut(usize, usize, Lanes<L>),
) {
    macro_rules! col {
        ($x:expr) => {
            at2::<L>(&[get($x), get(4 + $x), get(8 + $x), get(12 + $x)])
        };
    }
    let c = [col!(0), col!(1), col!(2), col!(3)];
    for i in 0..2 {
        for (j, v) in at2::<L>(&[c[0][i], c[1][i], c[2][i], c[3][i]]).into_iter().enumerate() {
            put(i, j, v);
        }
    }
}
