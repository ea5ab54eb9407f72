package tblog

// TLS, mTLS and bearer tokens against the real tblogd, with certificates made
// at test time by tests/support/make_test_certs.sh (Debian's openssl).

import (
	"io/ioutil"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
)

const testToken = "tok-go-test-0123456789abcdef"

// startSecureDaemon: TLS + mTLS on 127.0.0.1:<free port>, a token file, and
// the plaintext unix socket. Returns the daemon, its TCP address and the
// certificates' directory.
func startSecureDaemon(t *testing.T) (*daemon, string, string) {
	t.Helper()
	if os.Getenv("TBLOGD_BINARY") == "" {
		t.Skip("TBLOGD_BINARY is not set")
	}
	certs := filepath.Join(t.TempDir(), "certs")
	wd, _ := os.Getwd()
	script := filepath.Join(wd, "..", "..", "..", "..", "tests", "support", "make_test_certs.sh")
	if out, err := exec.Command("bash", script, certs).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", script, err, out)
	}
	tokens := filepath.Join(certs, "tokens")
	if err := ioutil.WriteFile(tokens, []byte("go:"+testToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	d := startDaemon(t, "--listen", "127.0.0.1:0",
		"--tls-cert", filepath.Join(certs, "server.crt"), "--tls-key", filepath.Join(certs, "server.key"),
		"--tls-client-ca", filepath.Join(certs, "client-ca.crt"), "--auth-token-file", tokens)
	listening := regexp.MustCompile(`listening on (127\.0\.0\.1:\d+)`)
	for i := 0; i < 300; i++ {
		if m := listening.FindStringSubmatch(d.stderr.String()); m != nil {
			return d, m[1], certs
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("tblogd did not log its TCP address:\n%s", d.stderr.String())
	return nil, "", ""
}

func mutualTLS(certs string) *TLSOptions {
	return &TLSOptions{
		CAFile:   filepath.Join(certs, "ca.crt"),
		CertFile: filepath.Join(certs, "client.crt"),
		KeyFile:  filepath.Join(certs, "client.key"),
	}
}

func TestTLSWithToken(t *testing.T) {
	d, tcp, certs := startSecureDaemon(t)

	t.Run("writes over mTLS with a token", func(t *testing.T) {
		w, err := Open(testContext(t), Options{Address: tcp, RunPath: "go/tls", TLS: mutualTLS(certs), Token: testToken})
		if err != nil {
			t.Fatal(err)
		}
		for step := int64(0); step < 5; step++ {
			if err := w.Scalar("loss", step, 1/float32(step+1)); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Close(testContext(t)); err != nil {
			t.Fatal(err)
		}
		if got := d.inspect(t)["go/tls"]["loss"].Count; got != 5 {
			t.Errorf("loss count %d, want 5", got)
		}
	})

	t.Run("settings from the environment", func(t *testing.T) {
		tls := mutualTLS(certs)
		for key, value := range map[string]string{"TBLOG_TLS_CA": tls.CAFile,
			"TBLOG_TLS_CLIENT_CERT": tls.CertFile, "TBLOG_TLS_CLIENT_KEY": tls.KeyFile, "TBLOG_TOKEN": testToken} {
			os.Setenv(key, value)
			defer os.Unsetenv(key)
		}
		w, err := Open(testContext(t), Options{Address: tcp, RunPath: "go/env"})
		if err != nil {
			t.Fatal(err)
		}
		w.Scalar("loss", 1, 0.5)
		if err := w.Close(testContext(t)); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("the unix socket takes the token in plaintext", func(t *testing.T) {
		w, err := Open(testContext(t), Options{Address: d.address, RunPath: "go/unix", Token: testToken})
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Close(testContext(t)); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("a missing or wrong token is UNAUTHENTICATED", func(t *testing.T) {
		for _, token := range []string{"", "tok-wrong-wrong-wrong-wrong"} {
			_, err := Open(testContext(t), Options{Address: tcp, RunPath: "go/x", TLS: mutualTLS(certs), Token: token})
			if e, ok := err.(*Error); !ok || e.Code != codes.Unauthenticated {
				t.Errorf("token %q: got %v, want Unauthenticated", token, err)
			}
		}
		if strings.Contains(d.stderr.String(), "tok-wrong") {
			t.Error("the daemon logged a token")
		}
	})

	t.Run("mTLS refuses a client without a certificate", func(t *testing.T) {
		_, err := Open(testContext(t), Options{Address: tcp, RunPath: "go/x",
			TLS: &TLSOptions{CAFile: filepath.Join(certs, "ca.crt")}, Token: testToken})
		if e, ok := err.(*Error); !ok || e.Code != codes.Unavailable {
			t.Errorf("got %v, want Unavailable", err)
		}
	})

	t.Run("a token is not sent in the clear beyond loopback", func(t *testing.T) {
		_, err := Open(testContext(t), Options{Address: "192.0.2.1:6066", RunPath: "go/x", Token: testToken})
		if e, ok := err.(*Error); !ok || e.Code != codes.InvalidArgument {
			t.Errorf("got %v, want InvalidArgument", err)
		}
	})
}

// A writer with a token reconnects after a kill -9 with its token: the
// restarted daemon checks it again and the run stays the token's.
func TestTokenWriterReconnectsAfterAKill(t *testing.T) {
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens")
	if err := ioutil.WriteFile(tokens, []byte("go:"+testToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	d := startDaemon(t, "--auth-token-file", tokens)
	ctx := testContext(t)
	w := openWriter(t, ctx, d, Options{RunPath: "go/token-restart", Token: testToken})
	for step := int64(0); step < 100; step++ {
		w.Scalar("x", step, float32(step))
		if step == 50 {
			if err := w.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			d.stop(t, syscall.SIGKILL)
			d.start(t)
		}
	}
	if err := w.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if w.Stats().Reconnects == 0 {
		t.Errorf("no reconnect: %+v", w.Stats())
	}
	checkEveryStep(t, readValues(t, filepath.Join(d.logdir, "go/token-restart")), "x", 100)
}
