// Command example logs a small synthetic training run to tblogd with the Go
// client: a loss curve, a validation accuracy sub-run, a weight histogram and
// an image per epoch, hyperparameters and a Markdown note. If the daemon
// restarts meanwhile, the writer reconnects and resends what it lacks.
//
//	example                                 # tblogd at $TBLOG_ADDRESS or 127.0.0.1:6066
//	example -address unix:/run/tblogd/tblogd.sock -run go/example
package main

import (
	"context"
	"flag"
	"fmt"
	"math"
	"math/rand"
	"os"
	"time"

	"tblog"
)

func main() {
	address := flag.String("address", "", `tblogd's address: "unix:/path" or "host:port" (default: $TBLOG_ADDRESS or 127.0.0.1:6066)`)
	runPath := flag.String("run", "", "run directory under the logdir (default: go/<timestamp>)")
	steps := flag.Int("steps", 100, "training steps")
	flag.Parse()

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	w, err := tblog.Open(ctx, tblog.Options{
		Address: *address, Experiment: "go", RunPath: *runPath,
		HParams: map[string]interface{}{"lr": 0.05, "optimizer": "sgd"},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	rng := rand.New(rand.NewSource(1))
	weights := make([]float64, 1000)
	pixels := make([]uint8, 16*16*3)
	for step := 0; step < *steps; step++ {
		loss := math.Exp(-float64(step)/30) + 0.02*rng.Float64()
		w.Scalar("loss", int64(step), float32(loss))
		if step%10 == 9 {
			w.ScalarIn("validation", "accuracy", int64(step), float32(1-loss/2))
			for i := range weights {
				weights[i] = rng.NormFloat64() * (1 + float64(step)/100)
			}
			w.Histogram("weights", int64(step), weights, tblog.HistogramOptions{})
			for i := range pixels {
				pixels[i] = uint8(rng.Intn(256) * step / *steps)
			}
			w.Image("samples", int64(step), tblog.TensorOf(pixels, 16, 16, 3), tblog.ImageOptions{})
		}
	}
	w.Text("notes", 0, fmt.Sprintf("**%d steps** of a synthetic run", *steps))
	if err := w.Close(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("wrote %s (%s)\n", w.RunPath, w.Directory)
}
