//! Cloud stores behind the `aws`, `azure` and `gcp` features: each helper builds
//! object_store's own builder and adds the store for one region. Configure the
//! bucket or container, credentials and endpoint on object_store's builder.

use std::sync::Arc;

use provisioning_core::Region;

use crate::builder::ObjectStoreInitializerBuilder;

impl ObjectStoreInitializerBuilder {
    fn with_built<S: object_store::ObjectStore>(
        self,
        region: Region,
        built: object_store::Result<S>,
    ) -> Self {
        match built {
            Ok(store) => self.region(region, Arc::new(store)),
            Err(source) => self.failed(crate::Error::StoreConfig { region, source }),
        }
    }

    /// Puts the objects of tenants in `region` into the S3 (or S3-compatible)
    /// bucket that `builder` describes.
    ///
    /// ```no_run
    /// use object_store::aws::AmazonS3Builder;
    /// use provisioning_storage::ObjectStoreInitializer;
    ///
    /// let storage = ObjectStoreInitializer::builder()
    ///     .with_s3("eu-west".parse()?, AmazonS3Builder::from_env()
    ///         .with_region("eu-west-1")
    ///         .with_bucket_name("tenants-eu"))
    ///     .layout(["uploads", "exports"])
    ///     .build()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(feature = "aws")]
    pub fn with_s3(self, region: Region, builder: object_store::aws::AmazonS3Builder) -> Self {
        self.with_built(region, builder.build())
    }

    /// Puts the objects of tenants in `region` into the Azure Blob Storage
    /// container that `builder` describes.
    #[cfg(feature = "azure")]
    pub fn with_azure(
        self,
        region: Region,
        builder: object_store::azure::MicrosoftAzureBuilder,
    ) -> Self {
        self.with_built(region, builder.build())
    }

    /// Puts the objects of tenants in `region` into the Google Cloud Storage
    /// bucket that `builder` describes.
    #[cfg(feature = "gcp")]
    pub fn with_gcs(
        self,
        region: Region,
        builder: object_store::gcp::GoogleCloudStorageBuilder,
    ) -> Self {
        self.with_built(region, builder.build())
    }
}

#[cfg(all(test, feature = "aws"))]
mod tests {
    use object_store::aws::AmazonS3Builder;

    use crate::ObjectStoreInitializer;

    #[test]
    fn a_bucketless_s3_builder_is_a_config_error_naming_the_region() {
        let err = ObjectStoreInitializer::builder()
            .with_s3("eu-west".parse().unwrap(), AmazonS3Builder::new())
            .build()
            .unwrap_err();
        assert!(
            matches!(err, crate::Error::StoreConfig { ref region, .. } if region.as_str() == "eu-west"),
            "{err:?}"
        );
    }
}
