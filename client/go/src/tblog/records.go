package tblog

// The logging methods: one per record kind of tblog.proto (Record.kind),
// each buffering one record. They return nil once the record is buffered
// (the daemon's verdict comes with the next Flush or Close),
// FailedPrecondition after Close, InvalidArgument for inputs that cannot be
// right (a shape that does not match the data), or the writer's final error.

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"reflect"
	"time"

	"google.golang.org/grpc/codes"

	tblogv1 "tblog/v1"
)

// RecordOptions are the fields every record may set; each logging method
// takes them last, optionally.
type RecordOptions struct {
	// When the value was observed; zero = the time of the call.
	WallTime time.Time
	// A sub-run ("train", "validation"): a subdirectory of the run that
	// TensorBoard shows as a run of its own, so curves overlay. "" = the run.
	Subrun string
	// Shown by TensorBoard instead of / under the tag (not for scalars sent
	// by Scalar, which travel as columns).
	DisplayName string
	Description string
}

// Element is a Go type a Tensor can hold.
type Element interface {
	~float32 | ~float64 | ~int8 | ~int16 | ~int32 | ~int64 |
		~uint8 | ~uint16 | ~uint32 | ~uint64 | ~bool
}

// Tensor is a dense tensor: little-endian elements of DType, row-major, of
// Shape (an empty shape is a scalar). Make one with TensorOf.
type Tensor struct {
	DType tblogv1.DType
	Shape []int64
	Data  []byte
}

var dtypeOfKind = map[reflect.Kind]tblogv1.DType{
	reflect.Float32: tblogv1.DType_DTYPE_FLOAT32, reflect.Float64: tblogv1.DType_DTYPE_FLOAT64,
	reflect.Int8: tblogv1.DType_DTYPE_INT8, reflect.Int16: tblogv1.DType_DTYPE_INT16,
	reflect.Int32: tblogv1.DType_DTYPE_INT32, reflect.Int64: tblogv1.DType_DTYPE_INT64,
	reflect.Uint8: tblogv1.DType_DTYPE_UINT8, reflect.Uint16: tblogv1.DType_DTYPE_UINT16,
	reflect.Uint32: tblogv1.DType_DTYPE_UINT32, reflect.Uint64: tblogv1.DType_DTYPE_UINT64,
	reflect.Bool: tblogv1.DType_DTYPE_BOOL,
}

var dtypeSize = map[tblogv1.DType]int{
	tblogv1.DType_DTYPE_FLOAT32: 4, tblogv1.DType_DTYPE_FLOAT64: 8, tblogv1.DType_DTYPE_INT8: 1,
	tblogv1.DType_DTYPE_INT16: 2, tblogv1.DType_DTYPE_INT32: 4, tblogv1.DType_DTYPE_INT64: 8,
	tblogv1.DType_DTYPE_UINT8: 1, tblogv1.DType_DTYPE_UINT16: 2, tblogv1.DType_DTYPE_UINT32: 4,
	tblogv1.DType_DTYPE_UINT64: 8, tblogv1.DType_DTYPE_BOOL: 1, tblogv1.DType_DTYPE_FLOAT16: 2,
	tblogv1.DType_DTYPE_BFLOAT16: 2,
}

// TensorOf copies values into a Tensor of the given shape (default: one
// dimension of len(values)). A shape that does not match is reported by the
// logging method the tensor is given to.
func TensorOf[T Element](values []T, shape ...int64) Tensor {
	if shape == nil {
		shape = []int64{int64(len(values))}
	}
	var buffer bytes.Buffer
	// Fixed-size elements: binary.Write cannot fail on them.
	_ = binary.Write(&buffer, binary.LittleEndian, values)
	return Tensor{DType: dtypeOfKind[reflect.TypeOf(values).Elem().Kind()], Shape: shape, Data: buffer.Bytes()}
}

// proto checks the tensor (what it names as `what` of tag) and returns it
// as the wire message.
func (t Tensor) proto(tag, what string) (*tblogv1.Tensor, error) {
	size, ok := dtypeSize[t.DType]
	if !ok {
		return nil, invalid(tag, "%s: unsupported dtype %s", what, t.DType)
	}
	elements := int64(1)
	for _, dim := range t.Shape {
		if dim < 0 {
			return nil, invalid(tag, "%s: negative dimension in shape %v", what, t.Shape)
		}
		elements *= dim
	}
	if int64(len(t.Data)) != elements*int64(size) {
		return nil, invalid(tag, "%s: shape %v of %s needs %d bytes, the data has %d",
			what, t.Shape, t.DType, elements*int64(size), len(t.Data))
	}
	return &tblogv1.Tensor{Dtype: t.DType, Shape: t.Shape, Data: t.Data}, nil
}

func invalid(tag, format string, args ...interface{}) *Error {
	return &Error{Code: codes.InvalidArgument,
		Message: fmt.Sprintf("tblog: tag %q: ", tag) + fmt.Sprintf(format, args...)}
}

func wallTime(at []RecordOptions) float64 {
	if len(at) > 0 && !at[0].WallTime.IsZero() {
		return float64(at[0].WallTime.UnixNano()) / 1e9
	}
	return nowSeconds()
}

func (w *Writer) add(tag string, step int64, at []RecordOptions, record *tblogv1.Record) error {
	record.Tag, record.Step, record.WallTime = tag, step, wallTime(at)
	if len(at) > 0 {
		record.Subrun, record.DisplayName, record.Description = at[0].Subrun, at[0].DisplayName, at[0].Description
	}
	return w.s.addRecord(record)
}

// Record buffers any record as is (a zero wall time is set to now): for
// what the methods below do not cover.
func (w *Writer) Record(record *tblogv1.Record) error {
	if record.WallTime == 0 {
		record.WallTime = nowSeconds()
	}
	return w.s.addRecord(record)
}

// Scalar buffers one point of tag at step (into a ScalarColumns record: a
// few appends, no allocation per point).
func (w *Writer) Scalar(tag string, step int64, value float32, at ...RecordOptions) error {
	subrun := ""
	if len(at) > 0 {
		subrun = at[0].Subrun
	}
	return w.s.addScalar(subrun, tag, step, value, wallTime(at))
}

// ScalarIn buffers one point of tag at step in a sub-run ("validation").
func (w *Writer) ScalarIn(subrun, tag string, step int64, value float32) error {
	return w.s.addScalar(subrun, tag, step, value, nowSeconds())
}

// Scalars is PyTorch's add_scalars: each value goes to the sub-run
// "<mainTag with / as _>_<name>" under the tag mainTag, so the curves overlay.
func (w *Writer) Scalars(mainTag string, step int64, values map[string]float32, at ...RecordOptions) error {
	prefix := ""
	if len(at) > 0 && at[0].Subrun != "" {
		prefix = at[0].Subrun + "/"
	}
	for _, c := range mainTag {
		if c == '/' {
			c = '_'
		}
		prefix += string(c)
	}
	when := wallTime(at)
	for name, value := range values {
		if err := w.s.addScalar(prefix+"_"+name, mainTag, step, value, when); err != nil {
			return err
		}
	}
	return nil
}

// ScalarRecord buffers one scalar as a record of its own (Record.scalar),
// with a style of its own and RecordOptions' display name and description.
func (w *Writer) ScalarRecord(tag string, step int64, value float32, style tblogv1.ScalarStyle, at ...RecordOptions) error {
	return w.add(tag, step, at, &tblogv1.Record{Kind: &tblogv1.Record_Scalar{
		Scalar: &tblogv1.Scalar{Value: value, Style: style}}})
}

// HistogramOptions choose the histogram layout; the zero value is
// TensorBoard 2's uniform layout with 30 buckets.
type HistogramOptions struct {
	Exponential bool   // TensorFlow's exponential buckets (PyTorch's add_histogram)
	Buckets     uint32 // uniform layout only; 0 = 30
}

// Histogram buffers a histogram of values; the daemon computes the buckets.
func (w *Writer) Histogram(tag string, step int64, values []float64, opts HistogramOptions, at ...RecordOptions) error {
	return w.HistogramTensor(tag, step, TensorOf(values), opts, at...)
}

// HistogramTensor: a histogram of a tensor of any numeric dtype and shape.
func (w *Writer) HistogramTensor(tag string, step int64, values Tensor, opts HistogramOptions, at ...RecordOptions) error {
	tensor, err := values.proto(tag, "histogram values")
	if err != nil {
		return err
	}
	layout := tblogv1.HistogramLayout_HISTOGRAM_LAYOUT_UNIFORM
	if opts.Exponential {
		layout = tblogv1.HistogramLayout_HISTOGRAM_LAYOUT_EXPONENTIAL
	}
	return w.add(tag, step, at, &tblogv1.Record{Kind: &tblogv1.Record_Histogram{Histogram: &tblogv1.Histogram{
		Values: tensor, Layout: layout, BucketCount: opts.Buckets}}})
}

// ImageOptions: how pixels are laid out and how the image is stored.
type ImageOptions struct {
	Layout     tblogv1.PixelLayout // HWC (default), CHW, or a batch: NHWC, NCHW
	Style      tblogv1.ImageStyle  // TensorBoard 2's tensor (default) or PyTorch's Summary.Image
	MaxOutputs uint32              // batches: images kept; 0 = 3
}

// Image buffers an image: uint8 pixels in [0,255] or float32/float64 in
// [0,1], 1 to 4 channels, in opts.Layout; the daemon encodes PNG.
func (w *Writer) Image(tag string, step int64, pixels Tensor, opts ImageOptions, at ...RecordOptions) error {
	tensor, err := pixels.proto(tag, "image pixels")
	if err != nil {
		return err
	}
	return w.add(tag, step, at, &tblogv1.Record{Kind: &tblogv1.Record_Image{Image: &tblogv1.Image{
		Source: &tblogv1.Image_Pixels{Pixels: tensor}, Layout: opts.Layout, Style: opts.Style,
		MaxOutputs: opts.MaxOutputs}}})
}

// Images buffers a batch of images ([N,H,W,C] unless opts.Layout says
// CHW/NCHW): up to opts.MaxOutputs are kept (TensorBoard 2's style), or
// tiled into one grid (PyTorch's add_images, IMAGE_STYLE_SUMMARY_IMAGE).
func (w *Writer) Images(tag string, step int64, pixels Tensor, opts ImageOptions, at ...RecordOptions) error {
	switch opts.Layout {
	case tblogv1.PixelLayout_PIXEL_LAYOUT_HWC:
		opts.Layout = tblogv1.PixelLayout_PIXEL_LAYOUT_NHWC
	case tblogv1.PixelLayout_PIXEL_LAYOUT_CHW:
		opts.Layout = tblogv1.PixelLayout_PIXEL_LAYOUT_NCHW
	}
	return w.Image(tag, step, pixels, opts, at...)
}

// ImageEncoded buffers an already encoded PNG or JPEG, passed through.
func (w *Writer) ImageEncoded(tag string, step int64, encoded []byte, opts ImageOptions, at ...RecordOptions) error {
	return w.add(tag, step, at, &tblogv1.Record{Kind: &tblogv1.Record_Image{Image: &tblogv1.Image{
		Source: &tblogv1.Image_Encoded{Encoded: encoded}, Style: opts.Style}}})
}

// TextOptions: PyTorch add_text's layout (tag "<tag>/text_summary").
type TextOptions struct {
	TorchStyle bool
}

// Text buffers a Markdown text.
func (w *Writer) Text(tag string, step int64, markdown string, at ...RecordOptions) error {
	return w.TextWith(tag, step, markdown, TextOptions{}, at...)
}

// TextWith buffers a Markdown text with TextOptions.
func (w *Writer) TextWith(tag string, step int64, markdown string, opts TextOptions, at ...RecordOptions) error {
	return w.add(tag, step, at, &tblogv1.Record{Kind: &tblogv1.Record_Text{Text: &tblogv1.Text{
		Content: &tblogv1.Text_Markdown{Markdown: markdown}, TorchStyle: opts.TorchStyle}}})
}

// TextTable buffers a table of strings (rows of equal length), rendered as
// a table by TensorBoard.
func (w *Writer) TextTable(tag string, step int64, rows [][]string, opts TextOptions, at ...RecordOptions) error {
	table := &tblogv1.StringTable{Shape: []int64{int64(len(rows)), 0}}
	for i, row := range rows {
		if i == 0 {
			table.Shape[1] = int64(len(row))
		} else if int64(len(row)) != table.Shape[1] {
			return invalid(tag, "table row %d has %d cells, row 0 has %d", i, len(row), table.Shape[1])
		}
		table.Cells = append(table.Cells, row...)
	}
	return w.add(tag, step, at, &tblogv1.Record{Kind: &tblogv1.Record_Text{Text: &tblogv1.Text{
		Content: &tblogv1.Text_Table{Table: table}, TorchStyle: opts.TorchStyle}}})
}

// AudioOptions: PyTorch add_audio's layout (Summary.Audio) instead of the
// audio plugin's tensor.
type AudioOptions struct {
	TorchStyle bool
}

// Audio buffers float32 PCM in [-1, 1], `channels` interleaved channels
// (1 or more); the daemon encodes 16-bit WAV.
func (w *Writer) Audio(tag string, step int64, samples []float32, channels int, sampleRate float32, opts AudioOptions, at ...RecordOptions) error {
	if channels < 1 || len(samples)%channels != 0 {
		return invalid(tag, "%d samples do not make frames of %d channels", len(samples), channels)
	}
	shape := []int64{int64(len(samples))}
	if channels > 1 {
		shape = []int64{int64(len(samples) / channels), int64(channels)}
	}
	return w.add(tag, step, at, &tblogv1.Record{Kind: &tblogv1.Record_Audio{Audio: &tblogv1.Audio{
		Samples:    &tblogv1.Tensor{Dtype: tblogv1.DType_DTYPE_FLOAT32, Shape: shape, Data: TensorOf(samples).Data},
		SampleRate: sampleRate, TorchStyle: opts.TorchStyle}}})
}

// PrCurveOptions: thresholds and optional per-prediction weights.
type PrCurveOptions struct {
	NumThresholds uint32    // 0 = 127, as PyTorch
	Weights       []float32 // one per prediction, or none
}

// PrCurve buffers a precision-recall curve from labels and predictions in
// [0,1]; the daemon counts them at each threshold.
func (w *Writer) PrCurve(tag string, step int64, labels []bool, predictions []float32, opts PrCurveOptions, at ...RecordOptions) error {
	if len(labels) != len(predictions) {
		return invalid(tag, "%d labels but %d predictions", len(labels), len(predictions))
	}
	inputs := &tblogv1.PrPredictions{Labels: tensorProto(TensorOf(labels)),
		Predictions: tensorProto(TensorOf(predictions)), NumThresholds: opts.NumThresholds}
	if opts.Weights != nil {
		if len(opts.Weights) != len(predictions) {
			return invalid(tag, "%d weights but %d predictions", len(opts.Weights), len(predictions))
		}
		inputs.Weights = tensorProto(TensorOf(opts.Weights))
	}
	return w.add(tag, step, at, &tblogv1.Record{Kind: &tblogv1.Record_PrCurve{PrCurve: &tblogv1.PrCurve{
		Data: &tblogv1.PrCurve_Predictions{Predictions: inputs}}}})
}

func tensorProto(t Tensor) *tblogv1.Tensor {
	return &tblogv1.Tensor{Dtype: t.DType, Shape: t.Shape, Data: t.Data}
}

// PrCurveCounts buffers a PR curve from counts already computed per
// threshold (four columns of equal length).
func (w *Writer) PrCurveCounts(tag string, step int64, counts *tblogv1.PrCounts, at ...RecordOptions) error {
	return w.add(tag, step, at, &tblogv1.Record{Kind: &tblogv1.Record_PrCurve{PrCurve: &tblogv1.PrCurve{
		Data: &tblogv1.PrCurve_Counts{Counts: counts}}}})
}

// HParamsOptions: the metrics hyperparameters are judged by, their domains
// and PyTorch add_hparams' layout.
type HParamsOptions struct {
	Metrics    []*tblogv1.MetricSpec
	Domains    map[string]*tblogv1.HParamDomain
	TorchStyle bool
}

// HParams buffers hyperparameters (usually given at Open, Options.HParams):
// float64, float32, int, int64, string or bool values.
func (w *Writer) HParams(values map[string]interface{}, opts HParamsOptions, at ...RecordOptions) error {
	hparams, err := toHParams(values)
	if err != nil {
		return err
	}
	if hparams == nil {
		hparams = &tblogv1.HParams{}
	}
	hparams.Metrics, hparams.Domains, hparams.TorchStyle = opts.Metrics, opts.Domains, opts.TorchStyle
	return w.add("", 0, at, &tblogv1.Record{Kind: &tblogv1.Record_Hparams{Hparams: hparams}})
}

// GraphDef buffers a model graph: a serialized tensorflow.GraphDef.
func (w *Writer) GraphDef(serialized []byte, at ...RecordOptions) error {
	return w.add("", 0, at, &tblogv1.Record{Kind: &tblogv1.Record_Graph{Graph: &tblogv1.Graph{
		Source: &tblogv1.Graph_GraphDef{GraphDef: serialized}}}})
}

// Graph buffers a model graph as nodes the daemon turns into a GraphDef.
func (w *Writer) Graph(nodes []*tblogv1.Node, at ...RecordOptions) error {
	return w.add("", 0, at, &tblogv1.Record{Kind: &tblogv1.Record_Graph{Graph: &tblogv1.Graph{
		Source: &tblogv1.Graph_Nodes{Nodes: &tblogv1.NodeList{Node: nodes}}}}})
}

// Embedding buffers an [N, D] float32 or float64 matrix for TensorBoard's
// projector, with optional metadata: one label per row, or N rows of
// len(header) tab-free columns (row-major) under a header.
func (w *Writer) Embedding(tag string, step int64, matrix Tensor, metadata, header []string, at ...RecordOptions) error {
	tensor, err := matrix.proto(tag, "embedding matrix")
	if err != nil {
		return err
	}
	if len(tensor.Shape) != 2 {
		return invalid(tag, "embedding matrix: shape %v is not [N, D]", tensor.Shape)
	}
	return w.add(tag, step, at, &tblogv1.Record{Kind: &tblogv1.Record_Embedding{Embedding: &tblogv1.Embedding{
		Matrix: tensor, Metadata: metadata, MetadataHeader: header}}})
}

// CustomScalars buffers the custom-scalars dashboard's layout (one per run).
func (w *Writer) CustomScalars(layout *tblogv1.CustomScalarLayout, at ...RecordOptions) error {
	return w.add("", 0, at, &tblogv1.Record{Kind: &tblogv1.Record_CustomScalars{CustomScalars: layout}})
}
