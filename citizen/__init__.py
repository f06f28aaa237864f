"""The citizen's phone page: sign-in, consent, my points and why, my QR code, benefits, who checked me."""
