//! The AVX2+FMA micro-kernel's two hot k loops for the full 6×16 tile, in assembly.
//!
//! The tile needs 15 of the 16 ymm registers (12 accumulators, two B vectors, a broadcast),
//! and whether the compiler keeps all twelve accumulators in registers through the loop
//! depended on code far away: adding an unrelated module to the crate moved `tile` into
//! another codegen unit, where LLVM kept a constant in a register across the loop and
//! spilled an accumulator instead — a store and a load on an FMA chain every step, which
//! took every product to 60–70 % of its speed (conv3_block1_0's input gradient 102 → 70
//! GFLOP/s). These loops fix the register assignment. They are the generic loops of
//! `kernel::packed_a_loop` and `kernel::rows_run` step for step: the same fused
//! multiply-adds on the same values in the same order (the same bits), two steps a turn;
//! the rows loop prefetches as `rows_run` does, the packed loop once per two steps (the
//! generic loop: every step). The accumulators come in and go out through memory (once per
//! tile).

use std::arch::asm;

/// The template lines that load the twelve sums (`[[f32; 8]; 2]; 6]` at `{acc}`) into
/// ymm0–ymm11, row by row.
macro_rules! load_sums {
    () => {
        concat!(
            "vmovups ymm0, [{acc}]\n",
            "vmovups ymm1, [{acc} + 32]\n",
            "vmovups ymm2, [{acc} + 64]\n",
            "vmovups ymm3, [{acc} + 96]\n",
            "vmovups ymm4, [{acc} + 128]\n",
            "vmovups ymm5, [{acc} + 160]\n",
            "vmovups ymm6, [{acc} + 192]\n",
            "vmovups ymm7, [{acc} + 224]\n",
            "vmovups ymm8, [{acc} + 256]\n",
            "vmovups ymm9, [{acc} + 288]\n",
            "vmovups ymm10, [{acc} + 320]\n",
            "vmovups ymm11, [{acc} + 352]",
        )
    };
}

/// The template lines that store ymm0–ymm11 back to the sums at `{acc}`.
macro_rules! store_sums {
    () => {
        concat!(
            "vmovups [{acc}], ymm0\n",
            "vmovups [{acc} + 32], ymm1\n",
            "vmovups [{acc} + 64], ymm2\n",
            "vmovups [{acc} + 96], ymm3\n",
            "vmovups [{acc} + 128], ymm4\n",
            "vmovups [{acc} + 160], ymm5\n",
            "vmovups [{acc} + 192], ymm6\n",
            "vmovups [{acc} + 224], ymm7\n",
            "vmovups [{acc} + 256], ymm8\n",
            "vmovups [{acc} + 288], ymm9\n",
            "vmovups [{acc} + 320], ymm10\n",
            "vmovups [{acc} + 352], ymm11",
        )
    };
}

/// The template lines of one step: B's row at `[$b]` (16 floats) times the six A values at
/// `[$a0]` … `[$a5]`, into the sums in ymm0–ymm11 (B in ymm12–13, broadcasts in ymm14–15).
#[rustfmt::skip]
macro_rules! step {
    ($b:literal, $a0:literal, $a1:literal, $a2:literal, $a3:literal, $a4:literal, $a5:literal) => {
        concat!(
            "vmovups ymm12, [", $b, "]\n",
            "vmovups ymm13, [", $b, " + 32]\n",
            "vbroadcastss ymm14, dword ptr [", $a0, "]\n",
            "vfmadd231ps ymm0, ymm14, ymm12\n",
            "vfmadd231ps ymm1, ymm14, ymm13\n",
            "vbroadcastss ymm15, dword ptr [", $a1, "]\n",
            "vfmadd231ps ymm2, ymm15, ymm12\n",
            "vfmadd231ps ymm3, ymm15, ymm13\n",
            "vbroadcastss ymm14, dword ptr [", $a2, "]\n",
            "vfmadd231ps ymm4, ymm14, ymm12\n",
            "vfmadd231ps ymm5, ymm14, ymm13\n",
            "vbroadcastss ymm15, dword ptr [", $a3, "]\n",
            "vfmadd231ps ymm6, ymm15, ymm12\n",
            "vfmadd231ps ymm7, ymm15, ymm13\n",
            "vbroadcastss ymm14, dword ptr [", $a4, "]\n",
            "vfmadd231ps ymm8, ymm14, ymm12\n",
            "vfmadd231ps ymm9, ymm14, ymm13\n",
            "vbroadcastss ymm15, dword ptr [", $a5, "]\n",
            "vfmadd231ps ymm10, ymm15, ymm12\n",
            "vfmadd231ps ymm11, ymm15, ymm13",
        )
    };
}

/// `packed_a_loop` for MR = 6 rows and 16 columns: `k` steps of
/// `acc[i][v] += a[p·6 + i] · b[p·ldb + 8v ..][..8]`, two steps a turn (one prefetch of A
/// 16 steps ahead per 48 bytes, so every line of the panel is fetched once or twice rather
/// than two or three times), an odd last step on its own.
///
/// # Safety
/// The CPU has AVX2 and FMA; `acc` points at 12 writable vectors of 8 floats (`[[_; 2]; 6]`);
/// `a` holds `6·k` floats and `b` has `k` rows of 16 floats, `ldb` floats apart.
#[target_feature(enable = "avx2,fma")]
#[inline]
pub(super) unsafe fn packed_6x16(acc: *mut f32, a: *const f32, b: *const f32, ldb: usize, k: usize) {
    // SAFETY: the caller's contract; the loop reads a[0..6k] and k rows of B, and `acc`'s
    // 384 bytes; prefetches may point anywhere.
    unsafe {
        asm!(
            load_sums!(),
            "test {pairs}, {pairs}",
            "jz 3f",
            ".p2align 4",
            "2:",
            "prefetcht0 [{a} + 384]",
            step!("{b}", "{a}", "{a} + 4", "{a} + 8", "{a} + 12", "{a} + 16", "{a} + 20"),
            step!("{b} + {ldb_bytes}", "{a} + 24", "{a} + 28", "{a} + 32", "{a} + 36", "{a} + 40", "{a} + 44"),
            "add {a}, 48",
            "lea {b}, [{b} + 2*{ldb_bytes}]",
            "dec {pairs}",
            "jnz 2b",
            "3:",
            "test {odd}, {odd}",
            "jz 4f",
            step!("{b}", "{a}", "{a} + 4", "{a} + 8", "{a} + 12", "{a} + 16", "{a} + 20"),
            "4:",
            store_sums!(),
            acc = in(reg) acc,
            a = inout(reg) a => _,
            b = inout(reg) b => _,
            ldb_bytes = in(reg) ldb * 4,
            pairs = inout(reg) k / 2 => _,
            odd = in(reg) k % 2,
            out("ymm0") _, out("ymm1") _, out("ymm2") _, out("ymm3") _,
            out("ymm4") _, out("ymm5") _, out("ymm6") _, out("ymm7") _,
            out("ymm8") _, out("ymm9") _, out("ymm10") _, out("ymm11") _,
            out("ymm12") _, out("ymm13") _, out("ymm14") _, out("ymm15") _,
            options(nostack),
        );
    }
}

/// `rows_run` for 6 rows read in place and 16 columns: steps `p0..p0 + len` of
/// `acc[i][v] += rows[i][p] · b[(p − p0)·ldb + 8v ..][..8]`, two steps a turn (an odd last
/// one on its own), fetching each row's line two lines ahead every 16 steps. Returns B's
/// next row.
///
/// # Safety
/// The CPU has AVX2 and FMA; `acc` points at 12 writable vectors of 8 floats; elements
/// `p0..p0 + len` of every row and `len` rows of 16 floats of B (`ldb` apart) are readable.
#[target_feature(enable = "avx2,fma")]
#[inline]
pub(super) unsafe fn rows_6x16(
    acc: *mut f32,
    rows: &[*const f32; 6],
    p0: usize,
    len: usize,
    b: *const f32,
    ldb: usize,
) -> *const f32 {
    let r = rows.map(|r| r.wrapping_add(p0));
    let next_b;
    // SAFETY: the caller's contract; the loop reads elements p0..p0+len of each row (byte
    // offsets 0..4·len from `r`), `len` rows of B and `acc`'s 384 bytes; prefetches may
    // point anywhere.
    unsafe {
        asm!(
            load_sums!(),
            "xor {off}, {off}",
            "test {end_pairs}, {end_pairs}",
            "jz 3f",
            ".p2align 4",
            "2:",
            // Every 8 turns (16 steps, 64 bytes), each row's next line but one.
            "test {off:e}, 63",
            "jnz 4f",
            "prefetcht0 [{r0} + {off} + 128]",
            "prefetcht0 [{r1} + {off} + 128]",
            "prefetcht0 [{r2} + {off} + 128]",
            "prefetcht0 [{r3} + {off} + 128]",
            "prefetcht0 [{r4} + {off} + 128]",
            "prefetcht0 [{r5} + {off} + 128]",
            "4:",
            step!("{b}", "{r0} + {off}", "{r1} + {off}", "{r2} + {off}", "{r3} + {off}", "{r4} + {off}", "{r5} + {off}"),
            step!(
                "{b} + {ldb_bytes}",
                "{r0} + {off} + 4",
                "{r1} + {off} + 4",
                "{r2} + {off} + 4",
                "{r3} + {off} + 4",
                "{r4} + {off} + 4",
                "{r5} + {off} + 4"
            ),
            "lea {b}, [{b} + 2*{ldb_bytes}]",
            "add {off}, 8",
            "cmp {off}, {end_pairs}",
            "jb 2b",
            "3:",
            // An odd last step.
            "cmp {off}, {end}",
            "jae 5f",
            step!("{b}", "{r0} + {off}", "{r1} + {off}", "{r2} + {off}", "{r3} + {off}", "{r4} + {off}", "{r5} + {off}"),
            "add {b}, {ldb_bytes}",
            "5:",
            store_sums!(),
            acc = in(reg) acc,
            r0 = in(reg) r[0],
            r1 = in(reg) r[1],
            r2 = in(reg) r[2],
            r3 = in(reg) r[3],
            r4 = in(reg) r[4],
            r5 = in(reg) r[5],
            b = inout(reg) b => next_b,
            ldb_bytes = in(reg) ldb * 4,
            off = out(reg) _,
            end_pairs = in(reg) (len & !1) * 4,
            end = in(reg) len * 4,
            out("ymm0") _, out("ymm1") _, out("ymm2") _, out("ymm3") _,
            out("ymm4") _, out("ymm5") _, out("ymm6") _, out("ymm7") _,
            out("ymm8") _, out("ymm9") _, out("ymm10") _, out("ymm11") _,
            out("ymm12") _, out("ymm13") _, out("ymm14") _, out("ymm15") _,
            options(nostack),
        );
    }
    next_b
}
