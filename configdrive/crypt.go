package configdrive

import (
	"crypto/rand"
	"crypto/sha512"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// SHA-512-crypt ("$6$") after Ulrich Drepper's "Unix crypt using SHA-256 and
// SHA-512" specification, the scheme glibc/libxcrypt crypt(3), shadow(5) and
// cloud-init's `passwd` expect.

const (
	cryptRoundsDefault = 5000
	cryptRoundsMin     = 1000
	cryptRoundsMax     = 999999999
	cryptSaltMax       = 16
	cryptAlphabet      = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
)

// HashPassword returns the SHA-512-crypt hash of password with a random
// 16-character salt drawn from rnd (crypto/rand when nil) and the default
// 5000 rounds: "$6$<salt>$<86 characters>".
func HashPassword(password string, rnd io.Reader) (string, error) {
	salt, err := randomSalt(rnd)
	if err != nil {
		return "", err
	}
	return SHA512Crypt(password, "$6$"+salt)
}

// randomSalt draws cryptSaltMax characters of the crypt alphabet from rnd
// without modulo bias (the alphabet has 64 symbols: 6 bits a byte).
func randomSalt(rnd io.Reader) (string, error) {
	if rnd == nil {
		rnd = rand.Reader
	}
	b := make([]byte, cryptSaltMax)
	if _, err := io.ReadFull(rnd, b); err != nil {
		return "", fmt.Errorf("password salt: read random: %w", err)
	}
	for i := range b {
		b[i] = cryptAlphabet[b[i]&0x3f]
	}
	return string(b), nil
}

// SHA512Crypt computes crypt(3) of password with a "$6$[rounds=N$]salt[$...]"
// setting, exactly as the specification describes: the salt is cut to 16
// characters, rounds are clamped to [1000, 999999999] (libxcrypt instead
// rejects rounds below 1000) and "rounds=N$" is echoed only when given.
func SHA512Crypt(password, setting string) (string, error) {
	const prefix = "$6$"
	if !strings.HasPrefix(setting, prefix) {
		return "", errors.New(`sha512-crypt: setting must start with "$6$"`)
	}
	rest := setting[len(prefix):]
	rounds, customRounds := cryptRoundsDefault, false
	if strings.HasPrefix(rest, "rounds=") {
		end := strings.IndexByte(rest, '$')
		if end < 0 {
			return "", errors.New("sha512-crypt: rounds= without terminating $")
		}
		n, err := strconv.ParseUint(rest[len("rounds="):end], 10, 64)
		if err != nil {
			return "", fmt.Errorf("sha512-crypt: rounds: %w", err)
		}
		rounds = int(min(max(n, cryptRoundsMin), cryptRoundsMax))
		customRounds = true
		rest = rest[end+1:]
	}
	salt := rest
	if i := strings.IndexByte(salt, '$'); i >= 0 {
		salt = salt[:i]
	}
	if len(salt) > cryptSaltMax {
		salt = salt[:cryptSaltMax]
	}
	pw, s := []byte(password), []byte(salt)

	// Digest B: password, salt, password.
	h := sha512.New()
	h.Write(pw)
	h.Write(s)
	h.Write(pw)
	b := h.Sum(nil)

	// Digest A.
	h.Reset()
	h.Write(pw)
	h.Write(s)
	n := len(pw)
	for ; n > 64; n -= 64 {
		h.Write(b)
	}
	h.Write(b[:n])
	for n = len(pw); n > 0; n >>= 1 {
		if n&1 != 0 {
			h.Write(b)
		} else {
			h.Write(pw)
		}
	}
	a := h.Sum(nil)

	// Byte sequence P: digest DP of the password repeated len(pw) times.
	h.Reset()
	for range len(pw) {
		h.Write(pw)
	}
	p := repeatTo(h.Sum(nil), len(pw))

	// Byte sequence S: digest DS of the salt repeated 16+A[0] times.
	h.Reset()
	for range 16 + int(a[0]) {
		h.Write(s)
	}
	sb := repeatTo(h.Sum(nil), len(s))

	c := a
	for i := range rounds {
		h.Reset()
		if i&1 != 0 {
			h.Write(p)
		} else {
			h.Write(c)
		}
		if i%3 != 0 {
			h.Write(sb)
		}
		if i%7 != 0 {
			h.Write(p)
		}
		if i&1 != 0 {
			h.Write(c)
		} else {
			h.Write(p)
		}
		c = h.Sum(c[:0])
	}

	var out strings.Builder
	out.WriteString(prefix)
	if customRounds {
		fmt.Fprintf(&out, "rounds=%d$", rounds)
	}
	out.WriteString(salt)
	out.WriteByte('$')
	for _, t := range cryptPermutation {
		encode24(&out, c[t[0]], c[t[1]], c[t[2]], 4)
	}
	encode24(&out, 0, 0, c[63], 2)
	return out.String(), nil
}

// cryptPermutation is the specification's byte order for the final digest.
var cryptPermutation = [21][3]int{
	{0, 21, 42}, {22, 43, 1}, {44, 2, 23}, {3, 24, 45}, {25, 46, 4}, {47, 5, 26}, {6, 27, 48},
	{28, 49, 7}, {50, 8, 29}, {9, 30, 51}, {31, 52, 10}, {53, 11, 32}, {12, 33, 54}, {34, 55, 13},
	{56, 14, 35}, {15, 36, 57}, {37, 58, 16}, {59, 17, 38}, {18, 39, 60}, {40, 61, 19}, {62, 20, 41},
}

func encode24(out *strings.Builder, b2, b1, b0 byte, n int) {
	w := uint(b2)<<16 | uint(b1)<<8 | uint(b0)
	for range n {
		out.WriteByte(cryptAlphabet[w&0x3f])
		w >>= 6
	}
}

func repeatTo(d []byte, n int) []byte {
	out := make([]byte, 0, n)
	for len(out) < n {
		out = append(out, d[:min(len(d), n-len(out))]...)
	}
	return out
}

// VerifyPassword reports whether password hashes to hash (a "$6$" string).
func VerifyPassword(password, hash string) bool {
	got, err := SHA512Crypt(password, hash)
	return err == nil && got == hash
}
