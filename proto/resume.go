package proto

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// Errors of [VerifyResumeToken].
var (
	// ErrResumeToken reports a resume token that is malformed, or whose
	// signature is not the key's: forged, altered, or from another cluster.
	ErrResumeToken = errors.New("proto: invalid resume token")
	// ErrResumeExpired reports a genuine resume token past its expiry.
	ErrResumeExpired = errors.New("proto: resume token expired")
)

// ResumeClaims are what a resume token binds: the session it resumes, as
// the gate node and listener that issued it know it, the generation of
// the session's tokens (a token is spent once used: the session's next
// token has the next generation), and when it stops being valid.
type ResumeClaims struct {
	Session  uint64
	Node     string // the Ergo node of the watchdog that owns the session
	Listener string
	Gen      uint32
	Expires  time.Time // to the second
}

// Layout of a token, before its base64url (unpadded) encoding:
//
//	version(1) session(8) gen(4) expires(8, unix seconds)
//	len(node)(1) node len(listener)(1) listener mac(16)
//
// where mac is the first 16 bytes of HMAC-SHA256 of everything before it.
const (
	resumeVersion = 1
	resumeMAC     = 16
	resumeFixed   = 1 + 8 + 4 + 8 + 1 + 1 + resumeMAC
	// MaxResumeToken is the longest resume token, in characters: node and
	// listener names of 255 bytes at most.
	MaxResumeToken = (resumeFixed + 2*255 + 2) / 3 * 4
)

// ResumeKey derives the key that signs a cluster's resume tokens from its
// cookie, which every node of the cluster shares: any gate of the cluster
// verifies a token any other issued, and no one without the cookie can
// make one.
func ResumeKey(cookie string) []byte {
	m := hmac.New(sha256.New, []byte(cookie))
	m.Write([]byte("skynode resume token key v1"))
	return m.Sum(nil)
}

// MintResumeToken returns the token of c signed with key, or an error when
// a name is over 255 bytes.
func MintResumeToken(key []byte, c ResumeClaims) (string, error) {
	if len(c.Node) > 255 || len(c.Listener) > 255 {
		return "", fmt.Errorf("proto: resume token: node or listener name over 255 bytes")
	}
	b := make([]byte, 0, resumeFixed+len(c.Node)+len(c.Listener))
	b = append(b, resumeVersion)
	b = binary.BigEndian.AppendUint64(b, c.Session)
	b = binary.BigEndian.AppendUint32(b, c.Gen)
	b = binary.BigEndian.AppendUint64(b, uint64(c.Expires.Unix()))
	b = append(b, byte(len(c.Node)))
	b = append(b, c.Node...)
	b = append(b, byte(len(c.Listener)))
	b = append(b, c.Listener...)
	b = append(b, resumeSum(key, b)...)
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// VerifyResumeToken checks token's signature with key and its expiry
// against now, and returns its claims. Its errors wrap [ErrResumeToken] or
// [ErrResumeExpired]. It reads at most [MaxResumeToken] characters and
// allocates nothing sized by the token's content.
func VerifyResumeToken(key []byte, token string, now time.Time) (ResumeClaims, error) {
	if len(token) > MaxResumeToken {
		return ResumeClaims{}, fmt.Errorf("%w: %d characters, over %d", ErrResumeToken, len(token), MaxResumeToken)
	}
	b, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil {
		return ResumeClaims{}, fmt.Errorf("%w: not base64url", ErrResumeToken)
	}
	if len(b) < resumeFixed || b[0] != resumeVersion {
		return ResumeClaims{}, fmt.Errorf("%w: malformed", ErrResumeToken)
	}
	body, mac := b[:len(b)-resumeMAC], b[len(b)-resumeMAC:]
	if !hmac.Equal(mac, resumeSum(key, body)) {
		return ResumeClaims{}, fmt.Errorf("%w: bad signature", ErrResumeToken)
	}
	// Signed by the key: the layout is ours, but check it all the same.
	c := ResumeClaims{
		Session: binary.BigEndian.Uint64(body[1:9]),
		Gen:     binary.BigEndian.Uint32(body[9:13]),
		Expires: time.Unix(int64(binary.BigEndian.Uint64(body[13:21])), 0),
	}
	rest := body[21:]
	name := func() (string, bool) {
		if len(rest) < 1 || len(rest) < 1+int(rest[0]) {
			return "", false
		}
		n := int(rest[0])
		s := string(rest[1 : 1+n])
		rest = rest[1+n:]
		return s, true
	}
	var ok1, ok2 bool
	c.Node, ok1 = name()
	c.Listener, ok2 = name()
	if !ok1 || !ok2 || len(rest) != 0 {
		return ResumeClaims{}, fmt.Errorf("%w: malformed", ErrResumeToken)
	}
	if !now.Before(c.Expires) {
		return c, fmt.Errorf("%w at %s", ErrResumeExpired, c.Expires.UTC().Format(time.RFC3339))
	}
	return c, nil
}

func resumeSum(key, body []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(body)
	return m.Sum(nil)[:resumeMAC]
}
