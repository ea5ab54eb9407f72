package tblog

// Every record kind of tblog.proto through the Go client into the real
// tblogd, read back: the kind `tblogd inspect` classifies each tag as, and
// the steps and values in the event files.

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
	"io/ioutil"
	"math"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	tblogv1 "tblog/v1"
)

func TestEveryRecordKindIsReadBack(t *testing.T) {
	d := startDaemon(t)
	ctx := testContext(t)
	w := openWriter(t, ctx, d, Options{RunPath: "go/kinds"})
	check := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	// Scalars: columns (Scalar), PyTorch's add_scalars, a record of its own.
	for step := int64(0); step < 3; step++ {
		check(w.Scalar("loss", step, float32(step)/2))
	}
	check(w.Scalar("acc", 1, 0.5, RecordOptions{Subrun: "validation"}))
	check(w.Scalars("losses", 2, map[string]float32{"train": 1, "test": 2}))
	check(w.ScalarRecord("lr", 4, 0.25, tblogv1.ScalarStyle_SCALAR_STYLE_SIMPLE_VALUE,
		RecordOptions{DisplayName: "learning rate", WallTime: time.Unix(1700000000, 0)}))
	// Histograms: float64 values, int32 tensor, exponential layout.
	check(w.Histogram("weights", 1, []float64{1, 2, 3, 4}, HistogramOptions{Buckets: 5}))
	check(w.HistogramTensor("counts", 1, TensorOf([]int32{1, 1, 2, 3}, 2, 2), HistogramOptions{Exponential: true}))
	// Images: pixels (HWC, float CHW), a batch, an encoded PNG, PyTorch's style.
	pixels := make([]uint8, 4*5*3)
	for i := range pixels {
		pixels[i] = uint8(i * 4)
	}
	check(w.Image("image", 1, TensorOf(pixels, 4, 5, 3), ImageOptions{}))
	check(w.Image("image_chw", 1, TensorOf(make([]float32, 1*4*5), 1, 4, 5),
		ImageOptions{Layout: tblogv1.PixelLayout_PIXEL_LAYOUT_CHW}))
	check(w.Images("batch", 1, TensorOf(append(append([]uint8{}, pixels...), pixels...), 2, 4, 5, 3),
		ImageOptions{MaxOutputs: 2}))
	check(w.Images("grid", 1, TensorOf(append(append([]uint8{}, pixels...), pixels...), 2, 4, 5, 3),
		ImageOptions{Style: tblogv1.ImageStyle_IMAGE_STYLE_SUMMARY_IMAGE}))
	picture := image.NewRGBA(image.Rect(0, 0, 3, 2))
	picture.Set(1, 1, color.RGBA{R: 255, A: 255})
	var encoded bytes.Buffer
	check(png.Encode(&encoded, picture))
	check(w.ImageEncoded("png", 2, encoded.Bytes(), ImageOptions{}))
	// Text: Markdown, PyTorch's style, a table.
	check(w.Text("notes", 1, "**bold**"))
	check(w.TextWith("torch_notes", 1, "plain", TextOptions{TorchStyle: true}))
	check(w.TextTable("table", 1, [][]string{{"a", "b"}, {"c", "d"}}, TextOptions{}))
	// Audio: mono, and stereo in PyTorch's style.
	samples := make([]float32, 800)
	for i := range samples {
		samples[i] = float32(math.Sin(float64(i) / 10))
	}
	check(w.Audio("sound", 1, samples, 1, 8000, AudioOptions{}))
	check(w.Audio("stereo", 1, samples, 2, 8000, AudioOptions{TorchStyle: true}))
	// PR curves: from predictions (with weights), and from counts.
	check(w.PrCurve("pr", 1, []bool{true, false, true, false}, []float32{0.9, 0.2, 0.6, 0.4},
		PrCurveOptions{NumThresholds: 10, Weights: []float32{1, 1, 2, 1}}))
	check(w.PrCurveCounts("pr_counts", 1, &tblogv1.PrCounts{TruePositives: []float32{3, 1},
		FalsePositives: []float32{2, 0}, TrueNegatives: []float32{0, 2}, FalseNegatives: []float32{0, 2}}))
	// HParams, graphs, embedding, custom scalars.
	check(w.HParams(map[string]interface{}{"lr": 0.1, "opt": "sgd", "bn": true},
		HParamsOptions{Metrics: []*tblogv1.MetricSpec{{Tag: "loss"}}}))
	check(w.Graph([]*tblogv1.Node{{Name: "x", Op: "Placeholder"}, {Name: "y", Op: "Relu", Inputs: []string{"x"}}}))
	graphDef := []byte{0x0a, 0x0c, 0x0a, 0x01, 'a', 0x12, 0x07, 'C', 'o', 'n', 's', 't', 'a', 'n'} // node {name:"a" op:"Constan"}
	check(w.GraphDef(graphDef, RecordOptions{Subrun: "traced"}))
	check(w.Embedding("emb", 3, TensorOf([]float32{1, 2, 3, 4, 5, 6}, 3, 2), []string{"one", "two", "three"}, nil))
	check(w.CustomScalars(&tblogv1.CustomScalarLayout{Categories: []*tblogv1.Category{{Title: "losses",
		Charts: []*tblogv1.Chart{{Title: "all", Content: &tblogv1.Chart_Multiline{
			Multiline: &tblogv1.MultilineChart{Tags: []string{"loss.*"}}}}}}}}))
	// Any record as is.
	check(w.Record(&tblogv1.Record{Tag: "raw", Step: 7, Kind: &tblogv1.Record_Scalar{Scalar: &tblogv1.Scalar{Value: 7}}}))
	if err := w.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}

	runs := d.inspect(t)
	run := runs["go/kinds"]
	for tag, kind := range map[string]string{
		"loss": "scalar", "lr": "scalar", "raw": "scalar", "weights": "histogram", "counts": "histogram",
		"image": "image", "image_chw": "image", "batch": "image", "grid": "image", "png": "image",
		"notes": "text", "torch_notes/text_summary": "text", "table": "text", "sound": "audio",
		"stereo": "audio", "pr": "pr_curve", "pr_counts": "pr_curve", "__run_graph__": "graph",
	} {
		if run[tag].Kind != kind {
			t.Errorf("%s: kind %q, want %q (run: %v)", tag, run[tag].Kind, kind, tagsOf(run))
		}
	}
	kinds := map[string]bool{}
	for _, report := range run {
		kinds[report.Kind] = true
	}
	for _, kind := range []string{"hparams", "custom_scalars"} {
		if !kinds[kind] {
			t.Errorf("no %s tag in %v", kind, tagsOf(run))
		}
	}
	if acc := runs["go/kinds/validation"]["acc"]; acc.Count != 1 || acc.LastStep != 1 {
		t.Errorf("validation acc: %+v", acc)
	}
	for _, subrun := range []string{"losses_train", "losses_test"} {
		if got := runs["go/kinds/"+subrun]["losses"]; got.Count != 1 || got.LastStep != 2 {
			t.Errorf("%s losses: %+v", subrun, got)
		}
	}
	if runs["go/kinds/traced"]["__run_graph__"].Kind != "graph" {
		t.Errorf("graph_def in sub-run traced: %v", tagsOf(runs["go/kinds/traced"]))
	}

	values := readValues(t, filepath.Join(d.logdir, "go/kinds"))
	if got := stepsOf(values, "loss"); !reflect.DeepEqual(got, []int64{0, 1, 2}) {
		t.Errorf("loss steps %v", got)
	}
	for _, v := range values {
		switch {
		case v.tag == "loss" && v.scalar != float64(v.step)/2,
			v.tag == "lr" && (v.legacy != "simple_value" || v.scalar != 0.25 || v.step != 4),
			v.tag == "raw" && v.scalar != 7:
			t.Errorf("%s at step %d: %+v", v.tag, v.step, v)
		}
	}
	tsv, err := ioutil.ReadFile(filepath.Join(d.logdir, "go/kinds", "00003", "emb", "tensors.tsv"))
	if err != nil || strings.Count(string(tsv), "\n") != 3 {
		t.Errorf("embedding tensors.tsv: %q, %v", tsv, err)
	}
	metadata, err := ioutil.ReadFile(filepath.Join(d.logdir, "go/kinds", "00003", "emb", "metadata.tsv"))
	if err != nil || !strings.Contains(string(metadata), "three") {
		t.Errorf("embedding metadata.tsv: %q, %v", metadata, err)
	}
}

func tagsOf(run map[string]tagReport) map[string]string {
	out := map[string]string{}
	for tag, report := range run {
		out[tag] = report.Kind
	}
	return out
}

// Inputs that cannot be right are refused by the call, naming the tag.
func TestRecordInputsAreChecked(t *testing.T) {
	ctx := testContext(t)
	_, w := openOnFake(t, ctx, "checks")
	for name, err := range map[string]error{
		"shape":     w.Image("img", 0, TensorOf([]uint8{1, 2, 3}, 2, 2), ImageOptions{}),
		"audio":     w.Audio("snd", 0, []float32{1, 2, 3}, 2, 8000, AudioOptions{}),
		"pr":        w.PrCurve("pr", 0, []bool{true}, []float32{0.5, 0.2}, PrCurveOptions{}),
		"table":     w.TextTable("tbl", 0, [][]string{{"a"}, {"b", "c"}}, TextOptions{}),
		"embedding": w.Embedding("emb", 0, TensorOf([]float32{1, 2}), nil, nil),
	} {
		if e, ok := err.(*Error); !ok || e.Code != 3 || !strings.Contains(e.Message, "tag") {
			t.Errorf("%s: %v, want InvalidArgument naming the tag", name, err)
		}
	}
	if err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}
}
