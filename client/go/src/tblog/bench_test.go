package tblog

// Benchmarks: the cost of a logging call on the caller's goroutine, and
// scalar points per second through the real tblogd (flushed at the end).
//
//	./run_tests.sh -run XXX -bench . -benchtime 2000000x

import (
	"testing"
)

func BenchmarkScalarCall(b *testing.B) {
	_, address := startFake(b)
	w, err := Open(testContext(b), Options{Address: address, RunPath: "bench", SendInterval: -1})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		w.Scalar("loss", int64(i), float32(i))
	}
	b.StopTimer()
	w.Close(testContext(b))
}

func BenchmarkScalarsToTblogd(b *testing.B) {
	d := startDaemon(b)
	w, err := Open(testContext(b), Options{Address: d.address, RunPath: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		w.Scalar("loss", int64(i), float32(i))
	}
	if err := w.Flush(testContext(b)); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	w.Close(testContext(b))
}
