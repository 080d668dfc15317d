package transport

import (
	"bytes"
	"testing"
)

// The report parser never panics, and returns a file's bytes exactly,
// whatever they are, as long as they do not hold the per-call fence.
func FuzzParseOutput(f *testing.F) {
	f.Add([]byte(`{"action":"drain"}`), []byte(`{"gateway_state":"running"}`), "written")
	f.Add([]byte("\n--N-- ok\n"), []byte{}, "read")
	f.Add([]byte("end N\nfile state absent\n"), []byte{0, 0xff, '\n'}, "error boom")
	f.Fuzz(func(t *testing.T, markerData, stateData []byte, result string) {
		const nonce = "0123456789abcdef01234567"
		_, _ = parseOutput(markerData, nonce) // anything at all
		fence := []byte("\n--" + nonce + "-- ")
		if bytes.Contains(markerData, fence) || bytes.Contains(stateData, fence) || bytes.ContainsRune([]byte(result), '\n') {
			t.Skip()
		}
		var out bytes.Buffer
		out.WriteString("hermes-drain/3 " + nonce + "\nepoch a:1\nhome /h\nresult " + result + "\n")
		out.WriteString("file marker present\n")
		out.Write(markerData)
		out.Write(fence)
		out.WriteString("ok\n")
		out.WriteString("file state present\n")
		out.Write(stateData)
		out.Write(fence)
		out.WriteString("ok\n")
		out.WriteString("proc 7 7 (python3) S\n")
		out.WriteString("file pid absent\nproc -\nprofiles 0\n")
		out.WriteString("end " + nonce + "\n")
		got, err := parseOutput(out.Bytes(), nonce)
		if err != nil {
			t.Fatalf("a well-formed report was refused: %v", err)
		}
		if !bytes.Equal(got.Marker.Data, markerData) || !bytes.Equal(got.GatewayState.Data, stateData) {
			t.Fatalf("files changed in transit: %q %q", got.Marker.Data, got.GatewayState.Data)
		}
	})
}
