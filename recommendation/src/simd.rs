//! The inner loops of factor models: dot products and `y += a·x` over `f32` slices.
//!
//! [`Lanes`] names the two kernels; [`Portable`] is plain Rust for any processor and
//! `Avx2` (x86-64) uses 256-bit fused multiply-adds with four independent sums, which
//! the compiler does not produce from plain loops (it keeps float sums in order).
//! Callers write a hot loop once, generic over `Lanes`, and [`dispatch`] runs the AVX2
//! instance where the processor has it. The two may differ in the last bits of a sum,
//! never in more.

/// Dot products and updates over `f32` slices (over the shorter length of the two).
pub(crate) trait Lanes {
    /// `a · b`.
    fn dot(a: &[f32], b: &[f32]) -> f32;
    /// `y += alpha · x`.
    fn axpy(alpha: f32, x: &[f32], y: &mut [f32]);
}

/// Plain Rust, eight running sums.
pub(crate) struct Portable;

impl Lanes for Portable {
    #[inline(always)]
    fn dot(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let (a, b) = (&a[..n], &b[..n]);
        let mut acc = [0f32; 8];
        let mut ca = a.chunks_exact(8);
        let mut cb = b.chunks_exact(8);
        for (x, y) in (&mut ca).zip(&mut cb) {
            for k in 0..8 {
                acc[k] = x[k].mul_add(y[k], acc[k]);
            }
        }
        let mut tail = 0f32;
        for (x, y) in ca.remainder().iter().zip(cb.remainder()) {
            tail = x.mul_add(*y, tail);
        }
        (acc[0] + acc[4]) + (acc[1] + acc[5]) + (acc[2] + acc[6]) + (acc[3] + acc[7]) + tail
    }

    #[inline(always)]
    fn axpy(alpha: f32, x: &[f32], y: &mut [f32]) {
        for (y, x) in y.iter_mut().zip(x) {
            *y = alpha.mul_add(*x, *y);
        }
    }
}

/// AVX2 with FMA; only reached through [`dispatch`], after the processor was checked.
#[cfg(target_arch = "x86_64")]
pub(crate) struct Avx2;

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    #[target_feature(enable = "avx2,fma")]
    #[inline]
    pub(super) unsafe fn dot(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut s = [_mm256_setzero_ps(); 4];
        let mut i = 0;
        // SAFETY (every load): i + 8 ≤ n, within both slices.
        while i + 32 <= n {
            for (k, sk) in s.iter_mut().enumerate() {
                let at = i + 8 * k;
                *sk = _mm256_fmadd_ps(
                    unsafe { _mm256_loadu_ps(pa.add(at)) },
                    unsafe { _mm256_loadu_ps(pb.add(at)) },
                    *sk,
                );
            }
            i += 32;
        }
        while i + 8 <= n {
            s[0] = _mm256_fmadd_ps(
                unsafe { _mm256_loadu_ps(pa.add(i)) },
                unsafe { _mm256_loadu_ps(pb.add(i)) },
                s[0],
            );
            i += 8;
        }
        let v = _mm256_add_ps(_mm256_add_ps(s[0], s[1]), _mm256_add_ps(s[2], s[3]));
        let q = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let q = _mm_add_ps(q, _mm_movehl_ps(q, q));
        let q = _mm_add_ss(q, _mm_shuffle_ps(q, q, 1));
        let mut r = _mm_cvtss_f32(q);
        while i < n {
            r = a[i].mul_add(b[i], r);
            i += 1;
        }
        r
    }

    #[target_feature(enable = "avx2,fma")]
    #[inline]
    pub(super) unsafe fn axpy(alpha: f32, x: &[f32], y: &mut [f32]) {
        let n = x.len().min(y.len());
        let (px, py) = (x.as_ptr(), y.as_mut_ptr());
        let a = _mm256_set1_ps(alpha);
        let mut i = 0;
        // SAFETY: i + 8 ≤ n, within both slices; x and y are distinct borrows.
        while i + 8 <= n {
            unsafe {
                let v = _mm256_fmadd_ps(a, _mm256_loadu_ps(px.add(i)), _mm256_loadu_ps(py.add(i)));
                _mm256_storeu_ps(py.add(i), v);
            }
            i += 8;
        }
        while i < n {
            y[i] = alpha.mul_add(x[i], y[i]);
            i += 1;
        }
    }
}

#[cfg(target_arch = "x86_64")]
impl Lanes for Avx2 {
    #[inline(always)]
    fn dot(a: &[f32], b: &[f32]) -> f32 {
        // SAFETY: `Avx2` is only used where `dispatch` found AVX2 and FMA.
        unsafe { avx2::dot(a, b) }
    }

    #[inline(always)]
    fn axpy(alpha: f32, x: &[f32], y: &mut [f32]) {
        // SAFETY: as above.
        unsafe { avx2::axpy(alpha, x, y) }
    }
}

/// Defines `fn $name(args) -> ret` that runs `$generic::<Avx2>(args)` inside a function
/// compiled for AVX2 and FMA when the processor has them (checked once and cached by
/// the standard library), else `$generic::<Portable>(args)`.
macro_rules! dispatch {
    ($(#[$doc:meta])* $vis:vis fn $name:ident = $generic:ident($($arg:ident: $ty:ty),* $(,)?) -> $ret:ty) => {
        $(#[$doc])*
        $vis fn $name($($arg: $ty),*) -> $ret {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2,fma")]
                fn fast($($arg: $ty),*) -> $ret {
                    $generic::<$crate::simd::Avx2>($($arg),*)
                }
                if std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
                {
                    // SAFETY: the processor has AVX2 and FMA, checked just above.
                    return unsafe { fast($($arg),*) };
                }
            }
            $generic::<$crate::simd::Portable>($($arg),*)
        }
    };
}
pub(crate) use dispatch;

fn dot_generic<L: Lanes>(a: &[f32], b: &[f32]) -> f32 {
    L::dot(a, b)
}

fn axpy_generic<L: Lanes>(alpha: f32, x: &[f32], y: &mut [f32]) {
    L::axpy(alpha, x, y)
}

dispatch! {
    /// `a · b` over the shorter of the two.
    pub fn dot = dot_generic(a: &[f32], b: &[f32]) -> f32
}

dispatch! {
    /// `y += alpha · x` over the shorter of the two.
    pub fn axpy = axpy_generic(alpha: f32, x: &[f32], y: &mut [f32]) -> ()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_kernels_agree_with_plain_loops() {
        for n in [0usize, 5, 8, 37, 64, 100] {
            let a: Vec<f32> = (0..n).map(|i| i as f32 * 0.5 - 3.0).collect();
            let b: Vec<f32> = (0..n).map(|i| (i % 5) as f32 - 1.0).collect();
            let plain: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
            assert!((dot(&a, &b) - plain).abs() < 1e-3, "n = {n}");
            assert!((Portable::dot(&a, &b) - plain).abs() < 1e-3, "n = {n}");
            let mut y = b.clone();
            axpy(2.0, &a, &mut y);
            let mut z = b.clone();
            Portable::axpy(2.0, &a, &mut z);
            for k in 0..n {
                assert_eq!(y[k], b[k] + 2.0 * a[k]);
                assert_eq!(z[k], y[k]);
            }
        }
    }
}
