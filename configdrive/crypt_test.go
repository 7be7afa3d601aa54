package configdrive

import (
	"bytes"
	"os/exec"
	"strings"
	"testing"

	"github.com/imprint-dev/imprint/internal/testenv"
)

// Vectors from the specification ("Unix crypt using SHA-256 and SHA-512").
var specVectors = []struct{ setting, password, want string }{
	{"$6$saltstring", "Hello world!", "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1"},
	{"$6$rounds=10000$saltstringsaltstring", "Hello world!", "$6$rounds=10000$saltstringsaltst$OW1/O6BYHV6BcXZu8QVeXbDWra3Oeqh0sbHbbMCVNSnCM/UrjmM0Dp8vOuZeHBy/YTBmSK6H9qs/y3RnOaw5v."},
	{"$6$rounds=5000$toolongsaltstring", "This is just a test", "$6$rounds=5000$toolongsaltstrin$lQ8jolhgVRVhY4b5pZKaysCLi0QBxGoNeKQzQ3glMhwllF7oGDZxUhx1yxdYcz/e1JSbq3y6JMxxl8audkUEm0"},
	{"$6$rounds=1400$anotherlongsaltstring", "a very much longer text to encrypt.  This one even stretches over morethan one line.", "$6$rounds=1400$anotherlongsalts$POfYwTEok97VWcjxIiSOjiykti.o/pQs.wPvMxQ6Fm7I6IoYN3CmLs66x9t0oSwbtEW7o7UmJEiDwGqd8p4ur1"},
	{"$6$rounds=77777$short", "we have a short salt string but not a short password", "$6$rounds=77777$short$WuQyW2YR.hBNpjjRhpYD/ifIw05xdfeEyQoMxIXbkvr0gge1a1x3yRULJ5CCaUeOxFmtlcGZelFl5CxtgfiAc0"},
	{"$6$rounds=123456$asaltof16chars..", "a short string", "$6$rounds=123456$asaltof16chars..$BtCwjqMJGx5hrJhZywWvt0RLE8uZ4oPwcelCjmw2kSYu.Ec6ycULevoBK25fs2xXgMNrCzIMVcgEJAstJeonj1"},
	{"$6$rounds=10$roundstoolow", "the minimum number is still observed", "$6$rounds=1000$roundstoolow$kUMsbe306n21p9R.FRkW3IGn.S9NPN0x50YhH1xhLsPuWGsUSklZt58jaTfF4ZEQpyUNGc0dqbpBYYBaHHrsX."},
}

func TestSHA512CryptSpecVectors(t *testing.T) {
	for _, v := range specVectors {
		got, err := SHA512Crypt(v.password, v.setting)
		if err != nil {
			t.Fatalf("SHA512Crypt(%q, %q): %v", v.password, v.setting, err)
		}
		if got != v.want {
			t.Errorf("SHA512Crypt(%q, %q) = %q, want %q", v.password, v.setting, got, v.want)
		}
		if !VerifyPassword(v.password, v.want) {
			t.Errorf("VerifyPassword(%q, %q) = false", v.password, v.want)
		}
	}
	if _, err := SHA512Crypt("x", "$1$md5"); err == nil {
		t.Error(`SHA512Crypt with a "$1$" setting: no error`)
	}
}

func TestHashPasswordRandomSalt(t *testing.T) {
	h1, err := HashPassword("r00tme", nil)
	if err != nil {
		t.Fatal(err)
	}
	h2, _ := HashPassword("r00tme", nil)
	parts := strings.Split(h1, "$")
	if len(parts) != 4 || parts[1] != "6" || len(parts[2]) != 16 || len(parts[3]) != 86 {
		t.Fatalf("HashPassword = %q, want $6$<16 salt>$<86>", h1)
	}
	if h1 == h2 {
		t.Errorf("two hashes with random salts are equal: %q", h1)
	}
	if !VerifyPassword("r00tme", h1) || VerifyPassword("r00tm3", h1) {
		t.Errorf("VerifyPassword disagrees with HashPassword for %q", h1)
	}
	// Deterministic with an injected reader.
	d1, _ := HashPassword("pw", bytes.NewReader(bytes.Repeat([]byte{7}, 16)))
	d2, _ := HashPassword("pw", bytes.NewReader(bytes.Repeat([]byte{7}, 16)))
	if d1 != d2 || !strings.HasPrefix(d1, "$6$5555555555555555$") {
		t.Errorf("HashPassword with fixed randomness = %q and %q", d1, d2)
	}
}

// TestSHA512CryptAgainstSystem compares with openssl and the system crypt(3)
// (through Python) on random salts and awkward passwords, where available.
func TestSHA512CryptAgainstSystem(t *testing.T) {
	passwords := []string{"", "r00tme", "pässwörd ünïcode", strings.Repeat("long", 40), "with $ and \\ and '"}
	var checked int
	if testenv.HasTool(t, "openssl") {
		for _, pw := range passwords[1:] { // openssl passwd prints "<NULL>" for ""
			salt, _ := randomSalt(nil)
			out, err := exec.Command("openssl", "passwd", "-6", "-salt", salt, pw).CombinedOutput()
			if err != nil {
				t.Fatalf("openssl passwd -6 -salt %s: %v: %s", salt, err, out)
			}
			want := strings.TrimSpace(string(out))
			got, _ := SHA512Crypt(pw, "$6$"+salt)
			if got != want {
				t.Errorf("password %q salt %s: got %q, openssl %q", pw, salt, got, want)
			}
			checked++
		}
	}
	if py := systemPython(); py != "" {
		for _, pw := range passwords {
			salt, _ := randomSalt(nil)
			setting := "$6$rounds=6123$" + salt
			cmd := exec.Command(py, "-W", "ignore", "-c", "import crypt,sys; print(crypt.crypt(sys.stdin.read(), sys.argv[1]))", setting)
			cmd.Stdin = strings.NewReader(pw)
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("python crypt: %v: %s", err, out)
			}
			want := strings.TrimSpace(string(out))
			got, _ := SHA512Crypt(pw, setting)
			if got != want {
				t.Errorf("password %q setting %s: got %q, crypt(3) %q", pw, setting, got, want)
			}
			checked++
		}
	}
	if checked == 0 {
		testenv.Skipf(t, "neither openssl nor python3 crypt available")
	}
}

// systemPython returns the Debian python3 that has cloud-init's modules and
// crypt(3) bindings, or "" (the PATH one may be another interpreter).
func systemPython() string {
	for _, p := range []string{"/usr/bin/python3", "python3"} {
		if path, err := exec.LookPath(p); err == nil {
			if exec.Command(path, "-W", "ignore", "-c", "import crypt").Run() == nil {
				return path
			}
		}
	}
	return ""
}
