package matcher

// dot is the scoring kernel: the dot product of two equal-length vectors.
// Four independent accumulators let the CPU overlap the multiply-adds (one
// accumulator chains every add on the previous one); the compiler drops the
// bounds checks inside the loop thanks to the re-slicing. A later change
// swaps in AVX2/AVX-512 assembly behind this same signature.
func dot(a, b []float32) float32 {
	n := len(a)
	b = b[:n]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+8 <= n; i += 8 {
		aa, bb := a[i:i+8:i+8], b[i:i+8:i+8]
		s0 += aa[0]*bb[0] + aa[4]*bb[4]
		s1 += aa[1]*bb[1] + aa[5]*bb[5]
		s2 += aa[2]*bb[2] + aa[6]*bb[6]
		s3 += aa[3]*bb[3] + aa[7]*bb[7]
	}
	for ; i < n; i++ {
		s0 += a[i] * b[i]
	}
	return (s0 + s1) + (s2 + s3)
}
