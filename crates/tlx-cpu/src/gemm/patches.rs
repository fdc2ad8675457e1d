//! A GEMM operand A whose rows are convolution patches read where they lie in the image
//! (implicit im2col): row r is output pixel `first + r` of an unpadded convolution, its
//! `kh·kw·c_in` elements `kh` runs of `kw·c_in` contiguous floats (one image row's `kw`
//! neighbouring pixels, all channels), `dilation_h` image rows apart. The micro-kernel
//! reads each run from the image instead of from a column buffer that im2col would first
//! have to write (15 % of ResNet50's 7×7 stem, and every strided 1×1 convolution's gather).

/// The patches of output pixels `first..first + rows` of an unpadded convolution over an
/// NHWC image `[n, in_h, in_w, c_in]` (see the module header). Built by [`Patches::new`],
/// which checks that every patch lies inside `image`.
#[derive(Clone, Copy, Debug)]
pub struct Patches<'a> {
    image: &'a [f32],
    /// `[in_h, in_w, c_in]` of one image.
    in_h: usize,
    in_w: usize,
    c_in: usize,
    out_h: usize,
    out_w: usize,
    kh: usize,
    kw: usize,
    stride: (usize, usize),
    dilation_h: usize,
    first: usize,
    rows: usize,
}

impl<'a> Patches<'a> {
    /// The patches of output pixels `first..first + rows` (of `n·out_h·out_w`, in NHWC
    /// order) of a `kh × kw` convolution with strides `stride`, dilation `(dilation_h, 1)`
    /// and no padding over `image` `[n, in_h, in_w, c_in]`.
    ///
    /// # Panics
    /// If the image does not fit `image`, a kernel does not fit the image, a size or stride
    /// is zero, or the rows run past the last output pixel.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        image: &'a [f32],
        [n, in_h, in_w, c_in]: [usize; 4],
        (kh, kw): (usize, usize),
        stride: (usize, usize),
        dilation_h: usize,
        first: usize,
        rows: usize,
    ) -> Patches<'a> {
        assert!(
            kh > 0 && kw > 0 && c_in > 0 && stride.0 > 0 && stride.1 > 0 && dilation_h > 0,
            "patches: zero size, stride or dilation"
        );
        let span_h = (kh - 1) * dilation_h + 1;
        assert!(
            span_h <= in_h && kw <= in_w,
            "patches: a {kh}x{kw} kernel does not fit a {in_h}x{in_w} image"
        );
        assert!(
            n * in_h * in_w * c_in <= image.len(),
            "patches: image [{n}, {in_h}, {in_w}, {c_in}] exceeds its slice"
        );
        let (out_h, out_w) = ((in_h - span_h) / stride.0 + 1, (in_w - kw) / stride.1 + 1);
        assert!(
            first + rows <= n * out_h * out_w,
            "patches: rows {first}..{} of {}",
            first + rows,
            n * out_h * out_w
        );
        Patches { image, in_h, in_w, c_in, out_h, out_w, kh, kw, stride, dilation_h, first, rows }
    }

    /// Rows (output pixels).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Columns: the patch length `kh·kw·c_in`.
    pub fn cols(&self) -> usize {
        self.kh * self.kw * self.c_in
    }

    /// Rows `r0..r0 + rows` of these.
    pub(super) fn band(&self, r0: usize, rows: usize) -> Patches<'a> {
        debug_assert!(r0 + rows <= self.rows);
        Patches { first: self.first + r0, rows, ..*self }
    }

    /// Floats of one run (`kw·c_in`: contiguous in the image).
    pub(super) fn run_len(&self) -> usize {
        self.kw * self.c_in
    }

    /// Floats from the end of one run to the start of the next (the next kernel row).
    pub(super) fn run_gap(&self) -> usize {
        self.dilation_h * self.in_w * self.c_in - self.run_len()
    }

    /// Where depth `p` of every row lies relative to the row's first element, and the
    /// floats left in its run from there: `(offset, left)`.
    pub(super) fn depth_at(&self, p: usize) -> (usize, usize) {
        let (run, q) = (p / self.run_len(), p % self.run_len());
        (run * self.dilation_h * self.in_w * self.c_in + q, self.run_len() - q)
    }

    /// A cursor at row `r` (of these rows), which yields the image offset of each row's
    /// first element in turn.
    pub(super) fn cursor(&self, r: usize) -> PatchCursor {
        let pixel = self.first + r;
        let (img, rem) = (pixel / (self.out_h * self.out_w), pixel % (self.out_h * self.out_w));
        let mut cursor = PatchCursor {
            img,
            oy: rem / self.out_w,
            ox: rem % self.out_w,
            row_start: 0,
            x_step: self.stride.1 * self.c_in,
        };
        cursor.row_start = self.row_start(&cursor);
        cursor
    }

    /// The image offset of output row (img, oy)'s first patch.
    fn row_start(&self, c: &PatchCursor) -> usize {
        ((c.img * self.in_h + c.oy * self.stride.0) * self.in_w) * self.c_in
    }

    /// The image offset of the cursor's row, then moves it to the next row.
    #[inline(always)]
    pub(super) fn next_offset(&self, c: &mut PatchCursor) -> usize {
        let at = c.row_start + c.ox * c.x_step;
        c.ox += 1;
        if c.ox == self.out_w {
            c.ox = 0;
            c.oy += 1;
            if c.oy == self.out_h {
                c.oy = 0;
                c.img += 1;
            }
            c.row_start = self.row_start(c);
        }
        at
    }

    /// The image.
    pub(super) fn image(&self) -> &'a [f32] {
        self.image
    }

    /// Element (r, p), for tests and the reference path.
    #[cfg(test)]
    pub(super) fn at(&self, r: usize, p: usize) -> f32 {
        let mut c = self.cursor(r);
        let base = self.next_offset(&mut c);
        self.image[base + self.depth_at(p).0]
    }
}

/// A position among the rows of a [`Patches`] (see [`Patches::cursor`]).
#[derive(Clone, Copy, Debug)]
pub(super) struct PatchCursor {
    img: usize,
    oy: usize,
    ox: usize,
    /// Image offset of the first patch of output row (img, oy).
    row_start: usize,
    /// Floats between neighbouring patches of one output row.
    x_step: usize,
}
