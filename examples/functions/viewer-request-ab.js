// A CloudFront Function (cloudfront-js-2.0) at viewer-request, written as on AWS:
// A/B bucket from a sticky cookie, the viewer's address, and an SPA-style index rewrite.
// Try: curl -i --cookie ab=b http://127.0.0.1:8080/api/echo?x=1
function handler(event) {
    var request = event.request;
    var bucket = request.cookies.ab ? request.cookies.ab.value : (Math.random() < 0.5 ? 'a' : 'b');
    request.headers['x-ab-bucket'] = { value: bucket };
    request.headers['true-client-ip'] = { value: event.viewer.ip };
    if (request.uri.endsWith('/')) {
        request.uri += 'index.html';
    }
    return request;
}
