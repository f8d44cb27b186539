// A CloudFront Function at viewer-response: the usual security headers on every answer.
// Try: curl -i http://127.0.0.1:8080/
async function handler(event) {
    var headers = event.response.headers;
    headers['strict-transport-security'] = { value: 'max-age=63072000; includeSubdomains; preload' };
    headers['content-security-policy'] = { value: "default-src 'self'" };
    headers['x-content-type-options'] = { value: 'nosniff' };
    headers['x-frame-options'] = { value: 'DENY' };
    headers['referrer-policy'] = { value: 'same-origin' };
    return event.response;
}
