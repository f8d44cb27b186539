// A/B routing between two configured origins with a sticky cookie, as CloudFront users write it:
// the bucket comes from the `origin-bucket` cookie (or is drawn), and the request goes to origin
// `a` or `b` via cf.selectRequestOriginById.
import cf from 'cloudfront';

function handler(event) {
    var request = event.request;
    var bucket = request.cookies['origin-bucket'] ? request.cookies['origin-bucket'].value
        : (Math.random() < 0.5 ? 'a' : 'b');
    cf.selectRequestOriginById(bucket === 'b' ? 'b' : 'a');
    request.headers['x-origin-bucket'] = { value: bucket };
    return request;
}
