// Package access decides who may call which matchd RPC: it authenticates
// the caller (a client certificate from the agency's CA carrying a role, or
// a bearer token), checks the caller's role against a table of gRPC method
// names (anything not in the table is denied), and bounds each caller's
// request rate and calls in flight.
//
// A caller's limits are kept under its key (the digest of its
// certificate's public key, or of its token), never under its name: a CA
// may issue one name twice, and a gate certificate named like the admin
// must not spend the admin's budget. Audit records show both, name and
// key id (Caller.KeyID).
//
// Refused calls are counted per reason (Config.Refused) and logged within
// limits per caller (RefusalLogLimits), so that a client retrying a refused
// call in a loop cannot fill the disk with warnings.
//
// # Roles
//
//	gate     Matcher Identify and Verify; Gates CaptureAndIdentify, CaptureAndVerify, GateStatus, IdentifyFrames
//	officer  Matcher Identify (watchlist search), Verify, GetSubject, ListSubjects, ListWatchlists, ExportSubject (audited)
//	admin    everything in the table but the partner RPCs: also Enroll, DeleteSubject, Admin Backup, Restore, Retemplate and RetemplateStatus, Audit List and Verify, Federation VerifyWitness and SendAuditHeads
//	partner  only Federation ReferenceSearch, RequestCoreData, SubmitAuditHead and ListWitnessedHeads (PartnerMethods)
//
// Officers (and admins) call Federation ListPending, ReviewReference,
// SearchPartner and FetchCoreData.
//
// # Partner agencies
//
// A partner is another agency's matchd. Its client certificate is issued by
// its own agency's CA, which this server trusts through Config.Partners
// (matchd --federation). A certificate that chains to a partner CA is role
// partner, with that partner's name, whatever role it claims: a foreign CA
// can never issue an officer or admin of this server. A certificate of
// this server's own CA claiming the partner role is a known caller with no
// rights here (it is what this agency calls its partners with).
//
// On matchd's metrics listener, /debug/pprof/ goes through a Guard too, under
// the table's Pprof entry: the admin role only.
//
// The health service is open (readiness probes carry no credentials; it says
// only whether the server is serving). Server reflection needs any role: it
// describes the API, which is public, but nothing is given to callers who
// are not known.
package access

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"

	"github.com/rs/zerolog"
	"golang.org/x/time/rate"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/bordermatch/bordermatch/pki"
)

// Roles.
const (
	Gate    = "gate"
	Officer = "officer"
	Admin   = "admin"
	Partner = "partner"
)

// Open marks a method anyone may call, without credentials.
const Open = "*"

// Pprof names matchd's /debug/pprof/ endpoints in the role table and in
// audit records.
const Pprof = "/debug/pprof/"

// Methods is the role table: the roles allowed to call each gRPC full method
// name. A method not in it is denied to everyone.
var Methods = map[string][]string{
	"/bordermatch.v1.Matcher/Enroll":         {Admin},
	"/bordermatch.v1.Matcher/Identify":       {Gate, Officer, Admin},
	"/bordermatch.v1.Matcher/Verify":         {Gate, Officer, Admin},
	"/bordermatch.v1.Matcher/DeleteSubject":  {Admin},
	"/bordermatch.v1.Matcher/GetSubject":     {Officer, Admin},
	"/bordermatch.v1.Matcher/ListSubjects":   {Officer, Admin},
	"/bordermatch.v1.Matcher/ListWatchlists": {Officer, Admin},
	"/bordermatch.v1.Matcher/ExportSubject":  {Officer, Admin},

	"/bordermatch.v1.Gates/CaptureAndIdentify": {Gate, Admin},
	"/bordermatch.v1.Gates/CaptureAndVerify":   {Gate, Admin},
	"/bordermatch.v1.Gates/GateStatus":         {Gate, Admin},
	"/bordermatch.v1.Gates/IdentifyFrames":     {Gate, Admin},

	"/bordermatch.v1.Admin/Backup":            {Admin},
	"/bordermatch.v1.Admin/Restore":           {Admin},
	"/bordermatch.v1.Admin/Retemplate":        {Admin},
	"/bordermatch.v1.Admin/RetemplateStatus":  {Admin},
	"/bordermatch.v1.Admin/ClusterStatus":     {Admin},
	"/bordermatch.v1.Admin/ClusterVerify":     {Admin},
	"/bordermatch.v1.Admin/ClusterPlan":       {Admin},
	"/bordermatch.v1.Admin/ClusterApply":      {Admin},
	"/bordermatch.v1.Admin/ListQuarantine":    {Admin},
	"/bordermatch.v1.Admin/RemoveQuarantined": {Admin},

	"/bordermatch.v1.Audit/List":   {Admin},
	"/bordermatch.v1.Audit/Verify": {Admin},

	// Partner agencies' calls (PartnerMethods): partners only; an
	// admin of this agency is not a partner.
	"/bordermatch.v1.Federation/ReferenceSearch":    {Partner},
	"/bordermatch.v1.Federation/RequestCoreData":    {Partner},
	"/bordermatch.v1.Federation/SubmitAuditHead":    {Partner},
	"/bordermatch.v1.Federation/ListWitnessedHeads": {Partner},
	"/bordermatch.v1.Federation/ListPending":        {Officer, Admin},
	"/bordermatch.v1.Federation/ReviewReference":    {Officer, Admin},
	"/bordermatch.v1.Federation/SearchPartner":      {Officer, Admin},
	"/bordermatch.v1.Federation/FetchCoreData":      {Officer, Admin},
	"/bordermatch.v1.Federation/VerifyWitness":      {Admin},
	"/bordermatch.v1.Federation/SendAuditHeads":     {Admin},

	// Not a gRPC method: the pprof endpoints of matchd's metrics listener,
	// which pass the same Guard.
	Pprof: {Admin},

	"/grpc.health.v1.Health/Check": {Open},
	"/grpc.health.v1.Health/Watch": {Open},
	"/grpc.health.v1.Health/List":  {Open},

	"/grpc.reflection.v1.ServerReflection/ServerReflectionInfo":      {Gate, Officer, Admin},
	"/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo": {Gate, Officer, Admin},
}

// PartnerMethods are the only methods the partner role may call.
var PartnerMethods = map[string]bool{
	"/bordermatch.v1.Federation/ReferenceSearch":    true,
	"/bordermatch.v1.Federation/RequestCoreData":    true,
	"/bordermatch.v1.Federation/SubmitAuditHead":    true,
	"/bordermatch.v1.Federation/ListWitnessedHeads": true,
}

// Allowed reports whether role may call method under table.
func Allowed(table map[string][]string, method, role string) bool {
	for _, r := range table[method] {
		if r == Open || (r == role && role != "") {
			return true
		}
	}
	return false
}

// Caller is who made a call.
type Caller struct {
	// Identity: the certificate's common name, the token's identity,
	// "insecure", or the peer address of an unauthenticated caller. Two
	// callers may share it (a CA may issue one name twice); KeyID tells
	// them apart.
	Identity string
	// KeyID names the caller's key: pki.KeyID of its certificate, or the
	// first 8 bytes (hex) of its bearer token's SHA-256; "" for an
	// insecure or unauthenticated caller.
	KeyID string
	Role  string
	// Auth: "cert", "token", "insecure" or "none".
	Auth string
	Peer string
	// Partner: the configured partner agency whose CA issued the
	// certificate (role partner); empty for this agency's own callers.
	Partner string

	// bucket is the key of the caller's limits: the whole digest of its
	// public key or token, never a name it could share with another.
	bucket string
}

type callerKey struct{}

// CallerFrom returns the caller the Guard put in ctx.
func CallerFrom(ctx context.Context) (Caller, bool) {
	c, ok := ctx.Value(callerKey{}).(Caller)
	return c, ok
}

// WithCaller returns ctx carrying c.
func WithCaller(ctx context.Context, c Caller) context.Context {
	return context.WithValue(ctx, callerKey{}, c)
}

// Config configures a Guard.
type Config struct {
	// Insecure: the server listens without TLS. Callers without a token are
	// then an "insecure" admin, unless Tokens is set, when a token is
	// required.
	Insecure bool
	// Tokens, if set, are accepted as "authorization: Bearer TOKEN".
	Tokens *Tokens
	// Methods is the role table; nil takes Methods.
	Methods map[string][]string
	// Rate is each caller's sustained calls per second and Burst the calls
	// it may make at once above it; 0 means no limit.
	Rate  float64
	Burst int
	// MaxConcurrent is each caller's most calls in flight; 0: no limit.
	MaxConcurrent int
	// Denied, if set, is told of every call refused as Unauthenticated or
	// PermissionDenied (not of calls refused for a limit), to audit it.
	// req is the request of a unary call (nil for a stream).
	Denied func(ctx context.Context, method string, req any, err error)
	// Refused, if set, is told the reason (Reasons) of every refused call,
	// logged or not: the counter per reason.
	Refused func(reason string)
	// Logger gets a warning per refused call, within RefusalLog's limits
	// (zero: DefaultRefusalLogLimits), and a summary of those left out.
	Logger     zerolog.Logger
	RefusalLog RefusalLogLimits
	// Partners are the partner agencies' CAs (matchd --federation): a
	// client certificate that chains to one is role Partner, identity
	// "NAME/CN", whatever role it claims. The server's TLS configuration
	// must trust them for client certificates too.
	Partners []PartnerCA
}

// PartnerCA is a partner agency and the CA that issues its certificates.
type PartnerCA struct {
	Name string
	CA   *x509.Certificate
}

// Guard is the access control of a gRPC server.
type Guard struct {
	cfg Config

	refusals *refusalLog

	mu      sync.Mutex
	clients map[string]*client
}

type client struct {
	lim      *rate.Limiter
	inFlight int
}

// maxClients bounds the per-caller state: past it, callers with no call in
// flight and a full bucket (they would start afresh anyway) are forgotten.
const maxClients = 10000

// New returns a Guard.
func New(cfg Config) *Guard {
	if cfg.Methods == nil {
		cfg.Methods = Methods
	}
	if cfg.Burst <= 0 && cfg.Rate > 0 {
		cfg.Burst = max(1, int(2*cfg.Rate))
	}
	return &Guard{cfg: cfg, clients: map[string]*client{}, refusals: newRefusalLog(cfg.RefusalLog, cfg.Logger)}
}

// Unary is the interceptor for unary calls.
func (g *Guard) Unary() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		ctx, release, err := g.admit(ctx, info.FullMethod, req)
		if err != nil {
			return nil, err
		}
		defer release()
		return handler(ctx, req)
	}
}

// Stream is the interceptor for streaming calls; a stream counts as one
// call in flight for as long as it is open.
func (g *Guard) Stream() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		ctx, release, err := g.admit(ss.Context(), info.FullMethod, nil)
		if err != nil {
			return err
		}
		defer release()
		return handler(srv, &callerStream{ServerStream: ss, ctx: ctx})
	}
}

type callerStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *callerStream) Context() context.Context { return s.ctx }

func noop() {}

// admit authenticates, authorises and counts a call.
func (g *Guard) admit(ctx context.Context, method string, req any) (context.Context, func(), error) {
	open := Allowed(g.cfg.Methods, method, "")
	c, authErr := g.authenticate(ctx)
	ctx = WithCaller(ctx, c)
	if open {
		return ctx, noop, nil
	}
	if authErr != nil {
		// Unauthenticated callers share a limit per address, so a flood
		// of bad credentials cannot flood the audit trail either.
		key := "peer:" + host(c.Peer)
		if err := g.limit(key, "peer "+host(c.Peer), false); err != nil {
			return ctx, nil, g.refuse(ctx, key, method, req, err, false)
		}
		return ctx, nil, g.refuse(ctx, key, method, req, authErr, true)
	}
	if !Allowed(g.cfg.Methods, method, c.Role) {
		err := status.Errorf(codes.PermissionDenied, "%s %q (key %s, role %s) may not call %s", c.Auth, c.Identity, keyName(c.KeyID), roleName(c.Role), method)
		if _, known := g.cfg.Methods[method]; !known {
			err = status.Errorf(codes.PermissionDenied, "%s is not in the role table: denied", method)
		}
		return ctx, nil, g.refuse(ctx, c.bucket, method, req, err, true)
	}
	if err := g.limit(c.bucket, fmt.Sprintf("%s %q (key %s)", c.Auth, c.Identity, keyName(c.KeyID)), true); err != nil {
		return ctx, nil, g.refuse(ctx, c.bucket, method, req, err, false)
	}
	return ctx, func() { g.done(c.bucket) }, nil
}

func keyName(id string) string {
	if id == "" {
		return "none"
	}
	return id
}

func roleName(r string) string {
	if r == "" {
		return "none"
	}
	return r
}

// refuse counts and logs (within the limits) a refusal of the caller
// whose limits are kept under key, audits it if audited (a refusal for a
// limit is not: the limit is what keeps a flood out of the trail), and
// returns the error marked as the Guard's.
func (g *Guard) refuse(ctx context.Context, key, method string, req any, err error, audited bool) error {
	c, _ := CallerFrom(ctx)
	reason := ReasonPermissionDenied
	switch status.Code(err) {
	case codes.Unauthenticated:
		reason = ReasonUnauthenticated
	case codes.ResourceExhausted:
		reason = ReasonRateLimit
		if errors.Is(err, errInFlight) {
			reason = ReasonInFlight
		}
	}
	if g.cfg.Refused != nil {
		g.cfg.Refused(reason)
	}
	g.refusals.note(key, c, method, reason, err)
	if audited && g.cfg.Denied != nil {
		g.cfg.Denied(ctx, method, req, err)
	}
	return refuse(err, reason)
}

// authenticate finds the caller. On failure the returned Caller still names
// the peer, for the audit record of the refusal.
func (g *Guard) authenticate(ctx context.Context) (Caller, error) {
	c := Caller{Auth: "none"}
	p, _ := peer.FromContext(ctx)
	if p != nil && p.Addr != nil {
		c.Peer = p.Addr.String()
	}
	c.Identity = c.Peer
	if p != nil {
		if ti, ok := p.AuthInfo.(credentials.TLSInfo); ok && len(ti.State.VerifiedChains) > 0 {
			leaf := ti.State.VerifiedChains[0][0]
			digest := pki.KeyDigest(leaf)
			c.KeyID, c.bucket = pki.KeyID(leaf), "cert:"+hex.EncodeToString(digest[:])
			if name, ok := g.partnerOf(ti.State.VerifiedChains); ok {
				cn := leaf.Subject.CommonName
				if cn == "" {
					cn = "serial:" + leaf.SerialNumber.Text(16)
				}
				c.Identity, c.Role, c.Auth, c.Partner = name+"/"+cn, Partner, "cert", name
				return c, nil
			}
			id, role, err := pki.RoleFromCert(leaf)
			c.Identity, c.Role, c.Auth = id, role, "cert"
			if err != nil {
				// A certificate of our CA without a usable role is a known
				// caller with no rights.
				c.Role = ""
			}
			if role == Partner {
				// Our own partner certificate is for calling other
				// agencies; here it is a known caller with no rights.
				c.Role = ""
			}
			return c, nil
		}
	}
	if tok, present, err := bearer(ctx); present {
		if err != nil {
			return c, err
		}
		if g.cfg.Tokens == nil {
			return c, status.Error(codes.Unauthenticated, "this server accepts no bearer tokens; use a client certificate")
		}
		id, role, ok := g.cfg.Tokens.Lookup(tok)
		if !ok {
			return c, status.Error(codes.Unauthenticated, "unknown bearer token")
		}
		h := sha256.Sum256([]byte(tok))
		c.Identity, c.Role, c.Auth = id, role, "token"
		c.KeyID, c.bucket = hex.EncodeToString(h[:8]), "token:"+hex.EncodeToString(h[:])
		return c, nil
	}
	if g.cfg.Insecure && g.cfg.Tokens == nil {
		c.Identity, c.Role, c.Auth, c.bucket = "insecure", Admin, "insecure", "insecure"
		return c, nil
	}
	return c, status.Error(codes.Unauthenticated, "no client certificate or bearer token")
}

// partnerOf returns the partner whose CA any verified chain passes
// through (the least privilege wins over the chain's own claims).
func (g *Guard) partnerOf(chains [][]*x509.Certificate) (string, bool) {
	for _, chain := range chains {
		for _, c := range chain[1:] {
			for _, p := range g.cfg.Partners {
				if p.CA != nil && bytes.Equal(c.Raw, p.CA.Raw) {
					return p.Name, true
				}
			}
		}
	}
	return "", false
}

// bearer returns the token of an "authorization: Bearer TOKEN" header.
func bearer(ctx context.Context) (token string, present bool, err error) {
	md, _ := metadata.FromIncomingContext(ctx)
	v := md.Get("authorization")
	if len(v) == 0 {
		return "", false, nil
	}
	if len(v) > 1 {
		return "", true, status.Error(codes.Unauthenticated, "more than one authorization header")
	}
	scheme, tok, ok := strings.Cut(v[0], " ")
	if !ok || !strings.EqualFold(scheme, "bearer") || strings.TrimSpace(tok) == "" {
		return "", true, status.Error(codes.Unauthenticated, `authorization header: want "Bearer TOKEN"`)
	}
	return strings.TrimSpace(tok), true, nil
}

func host(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}

// errInFlight marks a refusal for the calls in flight (the rate limit's is
// ResourceExhausted too).
var errInFlight = errors.New("too many calls in flight")

// inFlightError is the status of a refusal for the calls in flight; it
// wraps errInFlight so the reason can be told from the rate limit's.
type inFlightError struct{ st *status.Status }

func (e *inFlightError) Error() string              { return e.st.Err().Error() }
func (e *inFlightError) GRPCStatus() *status.Status { return e.st }
func (e *inFlightError) Unwrap() error              { return errInFlight }

// limit takes a token from key's bucket and, if inFlight, a slot of its
// calls in flight (given back by done); who names the caller in the
// refusal.
func (g *Guard) limit(key, who string, inFlight bool) error {
	if g.cfg.Rate <= 0 && (g.cfg.MaxConcurrent <= 0 || !inFlight) {
		return nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	c := g.clients[key]
	if c == nil {
		if len(g.clients) >= maxClients {
			g.sweep()
		}
		c = &client{}
		if g.cfg.Rate > 0 {
			c.lim = rate.NewLimiter(rate.Limit(g.cfg.Rate), g.cfg.Burst)
		}
		g.clients[key] = c
	}
	if inFlight && g.cfg.MaxConcurrent > 0 && c.inFlight >= g.cfg.MaxConcurrent {
		return &inFlightError{status.Newf(codes.ResourceExhausted, "%s has %d calls in flight, the most allowed; retry when one finishes", who, c.inFlight)}
	}
	if c.lim != nil && !c.lim.Allow() {
		return status.Errorf(codes.ResourceExhausted, "%s is over its rate limit (%g calls/s, burst %d); retry later", who, g.cfg.Rate, g.cfg.Burst)
	}
	if inFlight {
		c.inFlight++
	}
	return nil
}

func (g *Guard) done(key string) {
	if g.cfg.Rate <= 0 && g.cfg.MaxConcurrent <= 0 {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if c := g.clients[key]; c != nil && c.inFlight > 0 {
		c.inFlight--
	}
}

// sweep forgets idle callers; called with mu held.
func (g *Guard) sweep() {
	for k, c := range g.clients {
		if c.inFlight == 0 && (c.lim == nil || c.lim.Tokens() >= float64(g.cfg.Burst)) {
			delete(g.clients, k)
		}
	}
}

// String describes the guard for the start-up log.
func (g *Guard) String() string {
	return fmt.Sprintf("rate %g/s burst %d, %d in flight per caller", g.cfg.Rate, g.cfg.Burst, g.cfg.MaxConcurrent)
}
