package tblog

// A small reader of TensorBoard event files for the tests: TFRecord framing
// (CRC-32C checked) and just enough of tensorflow.Event / Summary decoded by
// hand (no TensorBoard stubs in Go) to list every value: tag, step, plugin
// and scalar. Events without a summary (file_version, the daemon's batch
// markers) are skipped; graph_def events are reported with tag
// "__run_graph__", as `tblogd inspect` names them.

import (
	"encoding/binary"
	"hash/crc32"
	"io/ioutil"
	"math"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/golang/protobuf/proto"
)

type eventValue struct {
	tag    string
	step   int64
	plugin string  // SummaryMetadata.plugin_data.plugin_name; "" for legacy kinds
	scalar float64 // simple_value or the first float_val/tensor_content float32; NaN otherwise
	legacy string  // "simple_value", "image", "histo", "audio" or ""
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func maskedCRC(data []byte) uint32 {
	crc := crc32.Checksum(data, castagnoli)
	return ((crc >> 15) | (crc << 17)) + 0xa282ead8
}

// protoFields splits a serialized message into field number -> raw values
// (varints and fixed values as uint64, length-delimited as bytes).
type protoField struct {
	number int
	value  uint64
	bytes  []byte
}

func protoFields(t *testing.T, data []byte) []protoField {
	t.Helper()
	var fields []protoField
	buffer := proto.NewBuffer(data)
	for {
		key, err := buffer.DecodeVarint()
		if err != nil {
			return fields // the end
		}
		field := protoField{number: int(key >> 3)}
		switch key & 7 {
		case 0:
			field.value, err = buffer.DecodeVarint()
		case 1:
			field.value, err = buffer.DecodeFixed64()
		case 5:
			field.value, err = buffer.DecodeFixed32()
		case 2:
			field.bytes, err = buffer.DecodeRawBytes(false)
		default:
			t.Fatalf("event file: wire type %d", key&7)
		}
		if err != nil {
			t.Fatalf("event file: %v", err)
		}
		fields = append(fields, field)
	}
}

// readValues returns every summary value of the event files directly in dir
// (one run or sub-run), in file and write order.
func readValues(t *testing.T, dir string) []eventValue {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "events.out.tfevents.*"))
	sort.Strings(files) // names start with the creation time
	var values []eventValue
	for _, file := range files {
		data, err := ioutil.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for len(data) > 0 {
			if len(data) < 12 {
				t.Fatalf("%s: torn record header", file)
			}
			length := binary.LittleEndian.Uint64(data)
			if binary.LittleEndian.Uint32(data[8:]) != maskedCRC(data[:8]) || uint64(len(data)) < 16+length {
				t.Fatalf("%s: bad record header", file)
			}
			event := data[12 : 12+length]
			if binary.LittleEndian.Uint32(data[12+length:]) != maskedCRC(event) {
				t.Fatalf("%s: bad record CRC", file)
			}
			data = data[16+length:]
			values = append(values, decodeEvent(t, event)...)
		}
	}
	return values
}

func decodeEvent(t *testing.T, event []byte) []eventValue {
	var step int64
	var summary []byte
	graph := false
	for _, f := range protoFields(t, event) {
		switch f.number {
		case 2:
			step = int64(f.value)
		case 4:
			graph = true
		case 5:
			summary = f.bytes
		}
	}
	if graph {
		return []eventValue{{tag: "__run_graph__", step: step, scalar: math.NaN()}}
	}
	var values []eventValue
	for _, f := range protoFields(t, summary) {
		if f.number != 1 {
			continue
		}
		v := eventValue{step: step, scalar: math.NaN()}
		for _, g := range protoFields(t, f.bytes) {
			switch g.number {
			case 1:
				v.tag = string(g.bytes)
			case 2:
				v.legacy, v.scalar = "simple_value", float64(math.Float32frombits(uint32(g.value)))
			case 4:
				v.legacy = "image"
			case 5:
				v.legacy = "histo"
			case 6:
				v.legacy = "audio"
			case 8:
				v.scalar = tensorScalar(t, g.bytes)
			case 9: // metadata.plugin_data.plugin_name
				for _, m := range protoFields(t, g.bytes) {
					if m.number == 1 {
						for _, p := range protoFields(t, m.bytes) {
							if p.number == 1 {
								v.plugin = string(p.bytes)
							}
						}
					}
				}
			}
		}
		values = append(values, v)
	}
	return values
}

// tensorScalar: a float32 tensor's first element (float_val or tensor_content).
func tensorScalar(t *testing.T, tensor []byte) float64 {
	dtype := uint64(0)
	for _, f := range protoFields(t, tensor) {
		if f.number == 1 {
			dtype = f.value
		}
	}
	if dtype != 1 { // DT_FLOAT
		return math.NaN()
	}
	for _, f := range protoFields(t, tensor) {
		switch {
		case f.number == 5 && f.bytes != nil && len(f.bytes) >= 4: // packed float_val
			return float64(math.Float32frombits(binary.LittleEndian.Uint32(f.bytes)))
		case f.number == 5 && f.bytes == nil:
			return float64(math.Float32frombits(uint32(f.value)))
		case f.number == 4 && len(f.bytes) >= 4:
			return float64(math.Float32frombits(binary.LittleEndian.Uint32(f.bytes)))
		}
	}
	return math.NaN()
}

// stepsOf returns the steps of tag's values, in file order.
func stepsOf(values []eventValue, tag string) []int64 {
	var steps []int64
	for _, v := range values {
		if v.tag == tag {
			steps = append(steps, v.step)
		}
	}
	return steps
}

// byTag: tag -> its values, for the tags starting with prefix.
func byTag(values []eventValue, prefix string) map[string][]eventValue {
	out := map[string][]eventValue{}
	for _, v := range values {
		if strings.HasPrefix(v.tag, prefix) {
			out[v.tag] = append(out[v.tag], v)
		}
	}
	return out
}

// checkEveryStep: tag holds the steps 0..total-1, each once, in order.
func checkEveryStep(t *testing.T, values []eventValue, tag string, total int) {
	t.Helper()
	got := stepsOf(values, tag)
	for i, step := range got {
		if step != int64(i) {
			t.Errorf("%s: %d points read back, want %d once each in order; the %dth is step %d",
				tag, len(got), total, i, step)
			return
		}
	}
	if len(got) != total {
		t.Errorf("%s: %d points read back, want %d", tag, len(got), total)
	}
}
