package mfa

// FailureCauses lists the causes failureReasons names, and CodeOf is
// codeOf, for the test that compares the reasons with httpx's codes.
func FailureCauses() []error {
	causes := make([]error, len(failureReasons))
	for i, r := range failureReasons {
		causes[i] = r.cause
	}
	return causes
}

// CodeOf is codeOf.
var CodeOf = codeOf
