// A CloudFront Function that answers by itself: the origin is never contacted.
// Try: curl -i http://127.0.0.1:8080/old-page
async function handler(event) {
    return {
        statusCode: 301,
        statusDescription: 'Moved Permanently',
        headers: { location: { value: '/api/echo?moved=1' } },
    };
}
