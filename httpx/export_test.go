package httpx

// AppendDetails exposes appendDetails to the tests.
var AppendDetails = appendDetails
