// Package satokentest mints ServiceAccount tokens as an API server would,
// for tests of whoever verifies them.
package satokentest

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// IssuerURL is the issuer the tokens name.
const IssuerURL = "https://kubernetes.default.svc"

// Issuer signs tokens with its own key, named by a key id as the API
// server's are.
type Issuer struct {
	key *rsa.PrivateKey
	kid string
}

// NewIssuer makes an issuer with a fresh key.
func NewIssuer() (*Issuer, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	return &Issuer{key: key, kid: rand.Text()}, nil
}

// Keys is the issuer's public key, as a verifier sees it.
func (i *Issuer) Keys() oidc.KeySet {
	return &oidc.StaticKeySet{PublicKeys: []crypto.PublicKey{&i.key.PublicKey}}
}

// JWK is the issuer's public key as the API server publishes it.
func (i *Issuer) JWK() jose.JSONWebKey {
	return jose.JSONWebKey{Key: &i.key.PublicKey, KeyID: i.kid, Algorithm: string(jose.RS256), Use: "sig"}
}

// Token describes a token to mint.
type Token struct {
	Issuer    string // IssuerURL when empty
	Audience  string
	Namespace string
	Account   string
	// Subject overrides system:serviceaccount:Namespace:Account.
	Subject string
	PodName string
	PodUID  string
	Expiry  time.Time
}

// Mint signs t.
func (i *Issuer) Mint(t Token) (string, error) {
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: i.key, KeyID: i.kid}}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return "", err
	}
	if t.Issuer == "" {
		t.Issuer = IssuerURL
	}
	if t.Subject == "" {
		t.Subject = "system:serviceaccount:" + t.Namespace + ":" + t.Account
	}
	k := map[string]any{"namespace": t.Namespace, "serviceaccount": map[string]any{"name": t.Account, "uid": "sa-uid"}}
	if t.PodName != "" {
		k["pod"] = map[string]any{"name": t.PodName, "uid": t.PodUID}
	}
	issued := t.Expiry.Add(-10 * time.Minute)
	return jwt.Signed(signer).Claims(jwt.Claims{
		Issuer: t.Issuer, Subject: t.Subject, Audience: jwt.Audience{t.Audience},
		Expiry: jwt.NewNumericDate(t.Expiry), IssuedAt: jwt.NewNumericDate(issued), NotBefore: jwt.NewNumericDate(issued),
	}).Claims(map[string]any{"kubernetes.io": k}).Serialize()
}
