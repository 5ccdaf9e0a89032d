//! What every API does with the chunks of an answer before rendering them:
//! wait for the first (so an early error gets a real status), or fold them.

use ferrite_openapi::{ApiError, ApiResult};
use futures::stream::{BoxStream, StreamExt};

/// Waits for the first item so that an error found before any output (bad
/// grammar, engine refusal) gets a real status code instead of a 200 stream.
pub async fn peek<T: Send + 'static>(
    mut stream: BoxStream<'static, ApiResult<T>>,
) -> ApiResult<BoxStream<'static, ApiResult<T>>> {
    match stream.next().await {
        None => Err(ApiError::internal("The engine produced no output.")),
        Some(Err(e)) => Err(e),
        Some(Ok(first)) => Ok(futures::stream::once(async move { Ok(first) })
            .chain(stream)
            .boxed()),
    }
}

/// Folds the stream into one value; the first error becomes the response.
pub async fn collect<T, A>(
    mut stream: BoxStream<'static, ApiResult<T>>,
    mut acc: A,
    push: impl Fn(&mut A, &T),
) -> ApiResult<A> {
    while let Some(item) = stream.next().await {
        push(&mut acc, &item?);
    }
    Ok(acc)
}
