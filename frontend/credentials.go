package frontend

import (
	"fmt"
	"net/url"
	"strings"
)

// credentialFree refuses a build argument that holds credentials. BuildKit
// records build arguments in the build's provenance attestation, its cache
// records and the LLB definition, so a password there leaves the build;
// credentials belong in --secret, which only the steps that fetch mount.
func credentialFree(name, value string) error {
	for _, line := range strings.Split(value, "\n") {
		key, _, _ := strings.Cut(line, "=")
		if k := strings.TrimSpace(key); k == "access-tokens" || k == "extra-access-tokens" {
			return fmt.Errorf("build argument %s sets %s: build arguments are recorded in the image's provenance and in BuildKit's cache; give the tokens with --secret id=access-tokens instead", name, k)
		}
		for _, word := range strings.Fields(line) {
			u, err := url.Parse(word)
			if err != nil || u.User == nil {
				continue
			}
			if _, hasPassword := u.User.Password(); hasPassword {
				return fmt.Errorf("build argument %s has a URL with a password (%s): build arguments are recorded in the image's provenance and in BuildKit's cache; give credentials with --secret id=netrc (HTTP) or --secret id=aws (S3) instead", name, redacted(u))
			}
		}
	}
	return nil
}

// redacted shows a URL without its password.
func redacted(u *url.URL) string {
	c := *u
	c.User = url.User(u.User.Username())
	return c.String()
}
