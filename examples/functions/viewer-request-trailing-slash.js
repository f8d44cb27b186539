// Trailing-slash redirect at viewer-request: a path without a file extension and without a
// trailing slash gets a 301 to the same path with one (query string kept); others go on.
function handler(event) {
    var request = event.request;
    var uri = request.uri;
    var last = uri.substring(uri.lastIndexOf('/') + 1);
    if (uri.endsWith('/') || last.indexOf('.') !== -1) {
        return request;
    }
    var query = Object.keys(request.querystring).map(function (name) {
        var q = request.querystring[name];
        return q.value === '' ? name : name + '=' + q.value;
    }).join('&');
    return {
        statusCode: 301,
        statusDescription: 'Moved Permanently',
        headers: { location: { value: uri + '/' + (query ? '?' + query : '') } },
    };
}
