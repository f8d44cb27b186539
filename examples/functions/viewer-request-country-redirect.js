// Country-based redirect at viewer-request, as in the AWS samples: viewers from Germany go to
// the German site, everyone else to the English one (302, no origin contact). CloudFront sets
// `cloudfront-viewer-country` when a cache or origin-request policy includes it.
function handler(event) {
    var request = event.request;
    var country = request.headers['cloudfront-viewer-country'];
    var target = country && country.value === 'DE' ? 'https://www.example.de' : 'https://www.example.com';
    return {
        statusCode: 302,
        statusDescription: 'Found',
        headers: { location: { value: target + request.uri } },
    };
}
