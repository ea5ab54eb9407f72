package tblog

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io/ioutil"
	"net"
	"os"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
)

// DefaultAddress is where a Writer looks for tblogd when Options.Address is
// empty: $TBLOG_ADDRESS when set, else 127.0.0.1:6066 (tblogd's default
// --listen; the same default as the C++, Python and Node clients).
func DefaultAddress() string {
	if address := os.Getenv("TBLOG_ADDRESS"); address != "" {
		return address
	}
	return "127.0.0.1:6066"
}

// dialTarget returns the gRPC target and dial options for an address
// (credentialOptions adds TLS or plaintext and the token).
func dialTarget(address string) (string, []grpc.DialOption) {
	opts := []grpc.DialOption{
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMessageBytes),
			grpc.MaxCallSendMsgSize(maxMessageBytes)),
	}
	socket := ""
	if strings.HasPrefix(address, "unix:") {
		socket = strings.TrimPrefix(strings.TrimPrefix(address, "unix:"), "//")
	} else if strings.HasPrefix(address, "/") {
		socket = address
	}
	if socket == "" {
		return address, opts
	}
	// grpc-go 1.33 has no unix resolver: dial the socket ourselves.
	opts = append(opts, grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", socket)
	}))
	return "passthrough:///localhost", opts
}

// TLSOptions: TLS to the daemon, with a client certificate for mTLS. File
// paths are PEM files; CertFile and KeyFile go together.
type TLSOptions struct {
	Enabled    bool   // TLS with the system's CAs; implied by any file below
	CAFile     string // CA that signed the daemon's certificate
	CertFile   string // client certificate (mTLS)
	KeyFile    string
	ServerName string // name checked in the daemon's certificate instead of the address's host
}

// tlsFromEnvironment reads TBLOG_TLS, TBLOG_TLS_CA, TBLOG_TLS_CLIENT_CERT,
// TBLOG_TLS_CLIENT_KEY and TBLOG_TLS_SERVER_NAME (the variables of every
// tblog client).
func tlsFromEnvironment() *TLSOptions {
	enabled := strings.ToLower(os.Getenv("TBLOG_TLS"))
	return &TLSOptions{
		Enabled:    enabled == "1" || enabled == "true" || enabled == "yes",
		CAFile:     os.Getenv("TBLOG_TLS_CA"),
		CertFile:   os.Getenv("TBLOG_TLS_CLIENT_CERT"),
		KeyFile:    os.Getenv("TBLOG_TLS_CLIENT_KEY"),
		ServerName: os.Getenv("TBLOG_TLS_SERVER_NAME"),
	}
}

// tokenFromEnvironment: TBLOG_TOKEN, else the first line of TBLOG_TOKEN_FILE.
func tokenFromEnvironment() string {
	if token := os.Getenv("TBLOG_TOKEN"); token != "" {
		return token
	}
	if path := os.Getenv("TBLOG_TOKEN_FILE"); path != "" {
		if data, err := ioutil.ReadFile(path); err == nil {
			return strings.TrimSpace(strings.SplitN(string(data), "\n", 2)[0])
		}
	}
	return ""
}

// bearerToken sends `authorization: Bearer <token>` on every call.
type bearerToken struct {
	token    string
	needsTLS bool
}

func (b bearerToken) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + b.token}, nil
}

func (b bearerToken) RequireTransportSecurity() bool { return b.needsTLS }

// isLocalAddress: a unix socket, or a loopback host ("127.x", "::1", "localhost").
func isLocalAddress(address string) bool {
	if strings.HasPrefix(address, "unix:") || strings.HasPrefix(address, "/") {
		return true
	}
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		host = address
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// credentialOptions: the dial options that carry TLS and the token. Without
// TLS a token is sent only to a unix socket or a loopback address (the daemon
// accepts it only there): anywhere else is an InvalidArgument error.
func credentialOptions(address string, opts Options) ([]grpc.DialOption, error) {
	settings := opts.TLS
	if settings == nil {
		settings = tlsFromEnvironment()
	}
	token := opts.Token
	if token == "" {
		token = tokenFromEnvironment()
	}
	invalid := func(format string, args ...interface{}) error {
		return &Error{Code: codes.InvalidArgument, Message: "tblog: " + fmt.Sprintf(format, args...)}
	}
	useTLS := settings.Enabled || settings.CAFile != "" || settings.CertFile != "" || settings.KeyFile != ""
	var dial []grpc.DialOption
	if useTLS {
		config := &tls.Config{ServerName: settings.ServerName, MinVersion: tls.VersionTLS12}
		if settings.CAFile != "" {
			pem, err := ioutil.ReadFile(settings.CAFile)
			if err != nil {
				return nil, invalid("cannot read the TLS CA file: %v", err)
			}
			config.RootCAs = x509.NewCertPool()
			if !config.RootCAs.AppendCertsFromPEM(pem) {
				return nil, invalid("no PEM certificate in the TLS CA file %s", settings.CAFile)
			}
		}
		if (settings.CertFile == "") != (settings.KeyFile == "") {
			return nil, invalid("a TLS client certificate needs its key, and a key its certificate")
		}
		if settings.CertFile != "" {
			pair, err := tls.LoadX509KeyPair(settings.CertFile, settings.KeyFile)
			if err != nil {
				return nil, invalid("TLS client certificate: %v", err)
			}
			config.Certificates = []tls.Certificate{pair}
		}
		dial = append(dial, grpc.WithTransportCredentials(credentials.NewTLS(config)))
	} else {
		if token != "" && !isLocalAddress(address) {
			return nil, invalid("refusing to send a token in the clear to %s: use TLS (TBLOG_TLS_CA) "+
				"or a loopback or unix-socket address", address)
		}
		dial = append(dial, grpc.WithInsecure())
	}
	if token != "" {
		dial = append(dial, grpc.WithPerRPCCredentials(bearerToken{token: token, needsTLS: useTLS}))
	}
	return dial, nil
}
